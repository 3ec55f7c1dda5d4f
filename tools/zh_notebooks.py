"""Add the Chinese key points (本节要点) and the Chinese terms to notebooks 00-10 (markdown only).

    python tools/zh_notebooks.py notebooks/[01]*.ipynb

The notebooks are the source of truth once this has run; it is kept for merges: when a notebook
comes back from another branch without the Chinese (re-written or re-executed elsewhere), take that
version whole and run this again.  It is idempotent: a second run changes nothing, and an existing
本节要点 cell (tagged ``zh-key-points``) is rewritten from the table below, so edit the table, not the
cell.  It touches markdown only (outputs and code cells stay as executed), splits a markdown cell at
a '## ' heading in its middle (so that every section ends on a cell boundary), and writes the JSON
as Jupyter does (nbformat).  A new '## ' section without an entry in ``P`` is reported, and fails
tests/test_i18n_notebooks.py until it has one.
"""

import re, sys, os
import nbformat

# Key points (本节要点) per notebook, keyed by the start of each "## " heading.
P = {}
P["00_first_socket"] = {
"## 1. Addresses and ports": [
 "一个端点是 (IP 地址, 端口)；一条 TCP 连接由两端的地址和端口这四个数（四元组）确定。",
 "`127.0.0.1` 和 `::1` 是环回接口，即本机自身；端口是 1 到 65535 的 16 位数，标识主机上的一个服务而不是一个套接字：监听套接字和它接受的每个连接共用同一个端口，内核按四元组把报文段交给对应的连接。绑定端口 0 表示让操作系统选一个空闲端口。",
 "`getaddrinfo()` 只做解析：把主机名和端口变成地址族（`AF_INET`/`AF_INET6`）、类型（`SOCK_STREAM` 即 TCP）和套接字地址，不打开任何连接。",
],
"## 2. Server and client": [
 "服务器：`socket()`、`bind()`、`listen()`，然后每来一个客户端就 `accept()` 一次；客户端：`connect()`。",
 "三次握手（`SYN`、`SYN-ACK`、`ACK`）由双方的操作系统内核完成，在服务器程序调用 `accept()` 之前连接就已是 `ESTABLISHED`。",
 "监听套接字本身不传数据：`accept()` 为每个连接返回一个**新的**套接字。",
 "`sendall()` 发送全部字节；`recv(4096)` 最多返回 4096 字节，即当时已到达的数据。",
],
"## 3. Closing": [
 "TCP 连接是两个单向的字节流，每一方用 `FIN` 关闭自己的发送方向。",
 "`recv()` 返回 `b''` 表示对方已关闭、再也不会发数据；它从不表示“暂时没有数据”。",
 "先关闭的一方经过 `FIN_WAIT2` 进入 `TIME_WAIT`；后关闭的一方在程序调用 `close()` 之前处于 `CLOSE_WAIT`，忘记关闭就会一直泄漏。",
 "`shutdown(SHUT_WR)` 只关闭发送方向（半关闭），仍可读对方的回复；连接没有人监听的端口会得到 `RST`，即 `ConnectionRefusedError`。",
],
"## 4. Exercise": [
 "这个练习把第 2、3 节的内容用在一个真实的服务器上：先自己写，再运行检查器，FAIL 行的提示会指出缺了哪条规则。",
 "检查器在真实的环回套接字上扮演客户端：分几块发送、发送大量二进制数据、什么也不发，各是一种情况。",
],
}
P["01_setsockopt"] = {
"## 1. TIME_WAIT": [
 "先发送 FIN 的一方（主动关闭方）在连接结束后进入 TIME_WAIT，按标准持续 2MSL（Linux 固定 60 秒）。",
 "等待的两个原因：最后一个 ACK 丢失时还能重传；让本连接迟到的重复报文段在网络中消失。",
 "服务器先关闭连接时，TIME_WAIT 连接占用的是服务器**自己的端口**，这正是重启时出问题的原因。",
 "抓包 `chatlab/data/captures/time_wait.pcap` 里没有哪个分组标记 TIME_WAIT：它就是最后一个 ACK 之后的那段沉默。",
],
"## 2. Restart without": [
 "端口上还有 TIME_WAIT 连接时，不设选项的套接字在 Linux 和 macOS 上 `bind()` 会失败：`EADDRINUSE`（地址已被占用）。",
 "在 Windows 上同样的 `bind()` 会成功（见第 5 节）。",
],
"## 3. `setsockopt": [
 "`setsockopt(level, optname, value)`：level 是选项所属的层次（`SOL_SOCKET`、`IPPROTO_TCP`……），optname 是选项名，value 为 1 表示打开。",
 "`SO_REUSEADDR` 允许新套接字绑定仍被已关闭连接占用的本地端口，不必等 TIME_WAIT 结束。",
 "用 `getsockopt()` 读回选项；macOS 返回的是选项位（4）而不是 1，非零即表示打开。",
],
"## 4. A Linux detail": [
 "Linux 只有在新旧两个套接字都设了 `SO_REUSEADDR` 时才放行 TIME_WAIT 连接；macOS 只看新套接字。",
 "新旧套接字通常是同一个程序的两次运行，所以“总是在 `bind()` 之前设置”两者都能满足。",
],
"## 5. Windows is different": [
 "在 Windows 上 `SO_REUSEADDR` 允许绑定**另一个活动套接字**正在使用的端口，别的程序可以借此抢占服务器端口，很危险。",
 "Windows 上普通的 `bind()` 本来就不受 TIME_WAIT 阻拦；安全的选项是 `SO_EXCLUSIVEADDRUSE`。",
 "所以 Python 的 `socket.create_server()` 只在非 Windows 系统上打开 `SO_REUSEADDR`。",
],
"## 6. Where chatlab does it": [
 "chatlab 的服务器在一个地方打开监听套接字：先设置选项，再 `bind()`（Windows 上不设置）。",
 "服务器在客户端仍连着时停止（服务器先关闭），然后立刻在同一端口重启，也能成功。",
],
"## Exercise 1": [
 "先写下预测，再运行实验：检查器对每个实验都给出本操作系统的结果和原因，不管你猜对没有。",
 "猜错不是失败，而是学到东西的时刻：先读懂每条原因，再做练习 2。",
 "通配地址旁边绑定具体地址的实验结果取决于操作系统（BSD、macOS 与 Linux 不同），所以不检查。",
],
"## Exercise 2": [
 "`make_listener()` 把第 2 到第 5 节用在一起：服务器要能在自己的端口上立即重启，各操作系统的做法见第 5 节。",
 "检查器连续两次在 TIME_WAIT 连接仍在时重启，并确认正在监听的端口仍被拒绝。",
],
"## 7. IPv6 and dual stack": [
 "IPv6 的环回地址是 `::1`，“所有接口”是 `::`；IPv6 套接字地址是四元组 `(host, port, flowinfo, scope_id)`。",
 "双栈套接字：关闭 `IPV6_V6ONLY` 的 IPv6 套接字也接受 IPv4 连接，"
 "对方地址显示为 IPv4 映射地址 `::ffff:127.0.0.1`；`create_server(..., dualstack_ipv6=True)` 会明确设置它。",
 "`IPV6_V6ONLY` 的默认值因系统而异（Linux 关，Windows 和 FreeBSD 开），所以要在 `bind()` 之前明确设置。",
 "Happy Eyeballs（RFC 8305）：IPv6 和 IPv4 地址并行尝试（IPv4 晚 250 ms 开始），谁先连上用谁，"
 "避免坏掉的 IPv6 路径拖满整个连接超时。",
],
}
P["02_select"] = {
"## 1. Nothing happens": [
 "`select()` 的第四个参数是超时：超时返回三个空列表。",
 "超时为 0 表示轮询、不睡眠；`None` 表示永远等待，需要能停下来的程序不要这样用。",
],
"## 2. Readable, case 1": [
 "监听套接字可读，表示有一个已完成三次握手的连接在等待，此时 `accept()` 会立即返回而不阻塞。",
],
"## 3. Readable, case 2": [
 "已连接的套接字可读，表示有数据到达，`recv()` 会立即返回已到的数据。",
],
"## 4. Readable, case 3": [
 "沉默从不会让套接字可读。可读的三种原因：有数据；对方的 FIN 到达（`recv()` 返回 `b''`）；有待处理的错误，如复位（`recv()` 抛出 `ConnectionResetError`）。",
 "`b''` 和复位对服务器意味着同一件事：关闭套接字，把它忘掉；忽略 `b''` 的循环会空转。",
 "对方悄无声息地消失时，连接成为半开连接，什么都不会到达；只能靠超时发现：TCP 保活，或者更好的应用层心跳（chatlab 用 ping）。",
 "`BlockingIOError` 也是 `OSError`，但意思是“现在还没有”，不能当作对方已断开。",
],
"## 5. Writable": [
 "可写表示 `send()` 不会阻塞；发送缓存不满的已连接套接字**总是**可写的。",
 "只在输出队列有数据时才把套接字放进 `wlist`，否则循环变成占满 CPU 的忙等。",
 "对方不读时缓存会满，非阻塞的 `send()` 抛出 `BlockingIOError`：把剩下的留在自己的队列里，不要对它调用阻塞的 `sendall()`。",
],
"## 6. `xlist`": [
 "对 TCP 套接字，`xlist` 报告的是几乎没人用的带外数据（紧急数据），而不是错误。",
 "错误体现在别处：复位的连接可读（`recv()` 抛异常），断开的连接可写（`send()` 抛异常）；多数服务器（包括 chatlab）传 `[]`。",
],
"## 7. Windows": [
 "在 Windows 上 `select()` 只接受套接字，不接受管道、文件和 `sys.stdin`。",
 "所以终端客户端用一个线程读键盘；chatlab 的服务器用套接字对而不是管道唤醒自己的循环，同一份代码到处都能运行。",
],
"## 8. The same steps": [
 "chatlab 的服务器是一个基于 `selectors` 的循环，每轮调用一次带超时的 `select()`，步骤与前几节相同。",
 "监听套接字可读就 `accept()` 并设为非阻塞；连接可读就 `recv()`，`b''` 或其他 `OSError` 就断开；只在队列里有数据时才关心可写。",
],
"## 9. select() vs epoll": [
 "`select()` 每次调用都要把所有描述符交给内核逐个检查，开销随套接字数增长，即使它们都空闲。",
 "`epoll`（Linux）和 `kqueue`（macOS）只需注册一次，每次只报告就绪的套接字，开销不随空闲连接增长。",
 "`selectors` 把它们放在同一个接口后面，换用只需改一行。",
],
"## 10. The hard limit": [
 "`select()` 的集合是固定大小的位图：编号大于等于 `FD_SETSIZE`（1024）的描述符放不进去，CPython 会抛出 `ValueError`。",
 "更好的选择器（如 epoll）没有这个限制；chatlab 在用 `select` 时会拒绝放不下的连接，并提示改用 epoll。",
],
"## 11. Exercise": [
 "一步 `select()` 循环把第 2 到第 8 节的规则放在一起：三种可读、何时关心可写、发送队列。",
 "检查器的每个情况对应一种真实的网络状况（空闲、关闭、复位、读得慢的客户端）；FAIL 行的提示说明缺了哪条规则。",
 "通过之后，下面的三个原始客户端就用你的这一步组成一个聊天室。",
],
}
P["03_struct_and_framing"] = {
"## 1. `struct.pack`": [
 "`struct.pack(format, ...)` 把数值按格式排成字节，`struct.unpack(format, data)` 再变回元组。",
 "格式的第一个字符决定字节序，后面每个字母是一个字段（`B` 1 字节、`H` 2 字节、`I` 4 字节、`Q` 8 字节）。",
 "值超出字段范围时 `struct` 会报错，而不是悄悄截断。",
],
"## 2. Byte order": [
 "大端序（网络字节序，`!` 或 `>`）高位字节在前，小端序（`<`）高位字节在后；不加前缀时用本机字节序。",
 "收发双方字节序不一致不会报错，只会读出另一个数：长度 1000 会被读成 3 892 510 720。",
 "所以协议要固定字节序（chatlab 处处用 `!`），接收方在相信一个长度之前要先检查它。",
],
"## 3. `calcsize`": [
 "本机模式（`@` 或不加前缀）会像 C 编译器一样插入填充字节以对齐；`=`、`<`、`>`、`!` 从不填充。",
 "规则：在网络上传输的格式一律以 `!` 开头。",
 "反复使用的格式编译成 `struct.Struct` 一次即可，`.size` 就是它的长度。",
],
"## 4. TCP is a byte stream": [
 "TCP 传送的是字节流，不保留消息边界：两次 `send()` 可能被一次 `recv()` 收到（粘包），一次 `send()` 也可能分几次收到（拆包）。",
 "在发送之间 `sleep()` 只是让粘包不那么常见，并没有解决问题。",
],
"## 5. Framing": [
 "接收方要自己找回消息边界，这就是成帧：用分隔符，或用长度前缀。",
 "分隔符（如 `\\n`）遇到消息本身含有分隔符时需要转义，二进制数据里到处都有这样的字节。",
 "长度前缀：先发定长首部里的长度，再发消息；数据部分可以是任何字节。",
],
"## 6. chatlab's frame header": [
 "chatlab 的每一帧以 12 字节首部 `struct.Struct(\"!BBBBII\")` 开头：魔数、版本、类型、标志、流标识、长度，后面是数据部分。",
 "`FrameDecoder` 接收任意切分的字节，只在最后一个字节到达时交出完整的帧；首部一到就先检查，4 GiB 的长度不会让它分配 4 GiB。",
 "魔数只是快速的第一道过滤：GBK 编码的“你”恰好以 `0xC4` 开头；真正起保护作用的是其后版本、类型、长度和数据部分的检查。",
],
"## 7. The same chat": [
 "chatlab 的服务器在同一个端口上讲两种协议：前两个字节是 `0xC4 0x01` 的连接用 chatlab 帧，其余的用 IRC 文本；只看魔数 `0xC4` 不够，GBK 的“你”也以它开头。",
 "IRC 用分隔符成帧：一条消息就是一行，以 CR LF 结束。接收方要逐字节寻找行尾，要限制行长（512 字节），还要防止正文里的换行符伪造出第二条消息。",
 "长度前缀与分隔符的对比：首部给出长度，接收方正好读那么多字节，数据部分可以是任意字节；文本行在 `nc` 里看得懂，但需要扫描、限长和转义。",
],
"## 8. Exercise": [
 "自己的成帧格式见练习说明；第 1、2、5 节给出了需要的 `struct` 格式和成帧规则。",
 "检查器按真实网络的方式送数据：半帧、一次一个字节、多帧粘在一起。",
 "最常见的错误是把一次 `recv()` 收到的东西当成一条消息；只在本机上用整帧测试是发现不了的。",
],
"## What to remember": [
 "在网络上传输的 `struct` 格式一律以 `!` 开头：固定字节序，没有填充。",
 "TCP 保证字节按序送达，但不保留 `send()` 之间的边界（粘包）；`sleep()` 只是掩盖问题。",
 "给消息成帧：长度前缀适用于任何数据；接收方维护缓冲区，只取出完整的帧；先检查首部再相信它。",
 "分隔符（IRC 的 CR LF）适合文本，代价是逐字节找行尾、限制行长、把分隔符挡在正文之外；chatlab 的服务器根据前两个字节在同一端口上两种都讲。",
],
"## 9. Two writes, then a read": [
 "Nagle 算法：已发送的数据还没被确认时，小报文段先攒着，等确认到了再发；延迟确认："
 "接收方先等一会儿（Linux 至少 40 ms），想把确认捎带在回复上。",
 "两者相遇于“写、写、读”模式：第二次小写入等第一次的确认，接收方等第二次写入才回复、于是推迟确认，"
 "每个请求白等一个延迟确认定时器。",
 "办法：整条消息一次写出（chatlab 的 `encode()` 就是这样），并设置 `TCP_NODELAY` 关闭 Nagle；"
 "chatlab 的服务器和客户端对每个连接都这样做。",
],
}
P["04_recv"] = {
"## (a) Nothing buffered": [
 "接收缓存为空时 `recv()` 阻塞，直到内核放入数据（情况 a）。",
 "套接字有三种模式：阻塞（默认）、超时（`settimeout(0.5)`，超时抛出 `TimeoutError`）和非阻塞（`setblocking(False)`，立即抛出 `BlockingIOError`）。",
 "超时不是连接出错：只是“还没有数据”，之后的 `recv()` 仍可能成功。",
],
"## (b) More buffered": [
 "缓存里的数据多于你给的缓冲区大小时，`recv()` 填满缓冲区就返回（情况 b）；没取走的字节留在内核里，不会丢。",
],
"## (c) Less buffered": [
 "缓存里的数据少于缓冲区大小时，`recv()` 取走全部数据立即返回，不会等够 n 字节（情况 c）。",
 "所以 `recv(1024)` 的意思是“最多 1024 字节”，而不是“下一条消息”。",
],
"## The peer closes": [
 "对方有序关闭（发送 FIN）后，之前发的字节先送达，然后 `recv()` 立即返回 `b''`，之后每次调用都如此。",
 "不检查 `b''` 的“收够为止”循环会在对方离开后永远空转。",
 "`SO_LINGER` 设为“开启、0 秒”时 `close()` 发送 RST，对方的 `recv()` 抛出 `ConnectionResetError`。",
],
"## `MSG_WAITALL`": [
 "`recv(n, MSG_WAITALL)` 让内核等到 n 字节到齐，但对方关闭、信号中断或出错时仍可能返回更少，长度照样要检查。",
 "它只对阻塞套接字有效；Python 的超时套接字实际上是非阻塞的，所以它代替不了循环。",
],
"## The seed's Bug note": [
 "`write('')` 什么也不写；多出来的内容来自别处。",
 "常见原因：写入的是 `str()` 得到的 repr 而不是字节；结束标记和最后一块数据被同一次 `recv()` 收到（粘包）；在 Windows 上用文本模式打开文件。",
 "规则：用 `\"wb\"` 打开文件，写入收到的原始字节，并由协议事先告诉接收方文件有多长。",
],
"## Where chatlab calls": [
 "chatlab 不用 `recv_exact`：服务器和客户端收到多少就交给 `FrameDecoder` 多少（服务器里经由该连接的编解码器），由它保留不完整的部分。",
 "服务器的套接字是非阻塞的，只在 `select()` 报告有数据时才 `recv()`；客户端的读线程则有意阻塞在 `recv()` 上；两者都把 `b''` 当作对方有序关闭。",
],
"## Exercise": [
 "`recv_exact` 练习用到本 notebook 前面列出的 `recv()` 的每一种返回情况。",
 "检查器的提示说明每个失败的原因：对方仍在发送、对方已关闭、后一条消息已经到达，各是一种情况。",
 "读一帧 = 读 12 字节首部，检查它，再读 length 字节数据部分；服务多个客户端的服务器不能这样阻塞地等一个客户端。",
 "抓包 `chatlab/data/captures/chat.pcap`：一帧分在两个报文段里，两帧挤在一个报文段里，接收方的 `recv()` 拿到的正是这些片段，由 `FrameDecoder` 重新拼成帧。",
],
"## What to remember": [
 "`recv(n)` 最多返回 n 字节，即调用时缓存里已有的数据；只有缓存为空时才阻塞，所以总要设超时，或者由 `select()` 确认有数据。",
 "`b''` 表示对方已关闭，之后每次都返回它；超时表示“还没有”。",
 "`MSG_WAITALL` 只在阻塞套接字上等够 n 字节，而且仍可能返回更少。",
 "`recv_exact` = 一个只要还缺的字节、遇到 `b''` 就抛异常的循环；读帧的顺序是首部、检查、数据部分。",
],
}
P["05_server_tour"] = {
"## 1. One chat line": [
 "`say()` 只把编码好的帧放进队列；只有客户端的写线程在套接字上发送数据。",
 "服务器分三层：套接字循环（`server.py`）用 `recv()` 取数据；编解码器（`codecs.py`）按连接的前几个字节选定，对 chatlab 客户端就是 `FrameDecoder`，把字节变成 `Say` 消息；聊天核心（`chatroom.py`）不碰套接字，只决定要做什么，这里是向房间里每个成员（包括发送者）广播一条 `ChatMessage`。",
 "回到循环，广播的消息按每种成帧方式只编码一次，同样的字节追加到每个成员的发送队列，在本轮末尾一起发出。",
 "发送者和房间由服务器填写：SAY 帧没有发送者字段，所以谁也冒充不了别人。",
],
"## 2. Rooms": [
 "每个人一开始都在 `lobby`；SAY 只发给发送者所在的房间，房间就是广播时遍历的一组连接。",
],
"## 3. A whisper": [
 "私聊只发给一个人，发送者会收到一份副本，以确认这个昵称存在；同一房间的其他人看不到。",
],
"## 4. A nickname collision": [
 "昵称在 NFKC 规范化和大小写折叠之后必须唯一：`ALICE` 和全角的 `ａｌｉｃｅ` 都算 alice。",
 "被拒绝的连接抛出 `chatlab.NickError`，带有机器可读的 `code`；原来的用户不受影响。",
],
"## 5. Misbehaving clients": [
 "解码器只看首部就检查魔数和长度，不缓存数据部分：声称 1 GiB 的帧只花了服务器 12 字节内存。",
 "违反协议的客户端被断开并告知原因，原因用它自己的成帧方式发送：浏览器的前几个字节不是 `0xC4 0x01`，被当作文本（IRC）客户端，收到一行 IRC `ERROR`；其他人照常聊天。",
 "刷屏的客户端不会被断开，而是被**读得更慢**（令牌桶），它发的内容一点不丢；它的字节留在内核里，其余交给 TCP 的流量控制。",
],
"## 6. Exercise": [
 "机器人练习用到第 1 到第 5 节的客户端 API：等待事件、回答、停止。",
 "检查器在真实的服务器上测试房间里的提问、私聊、其他人的消息和停止信号。",
 "通过之后，下一个单元格让你的机器人在房间里回答 alice。",
],
"## What to remember": [
 "一行聊天：收到一帧，连接的编解码器把它变成消息，不碰套接字的聊天核心决定做什么（一次广播），循环把它编码一次、放进每个成员的队列，在本轮末尾发出；内核一时收不下的部分等 `select()` 报告可写再发。服务器填写发送者。",
 "服务器先看首部再缓存数据部分，以明确的原因断开违反协议的客户端，用“不读”来放慢刷屏者，不丢任何数据。",
 "机器人是带循环的客户端：带超时地等待，忽略自己，在哪里被问就在哪里回答。",
],
}
P["06_throughput"] = {
"## 1. TCP alone": [
 "TCP 自己就有流量控制（接收窗口）和拥塞控制：单独一条连接上的一次 `sendall()` 就能跑满链路，不需要 `sleep()`。",
 "`sendall()` 在内核收下字节时就返回，远早于接收方收到最后一个字节；这中间的数据都在某个队列里排队。",
 "在与聊天共用的连接上，程序交给 TCP 的数据就是排在下一条聊天消息前面的队列：这就是应用层窗口存在的理由。",
],
"## 2. The three strategies": [
 "策略只决定字节**何时**可以发出：`allowance(now)` 说明现在能发多少，每个确认通过 `on_ack` 传回。",
 "`SleepPaced` 忽略确认；`FixedWindow` 让在途（已发送未确认）数据不超过固定窗口；`AdaptiveWindow` 记住最小 RTT 作为基准 RTT，RTT 超出的部分就是排队时延，据此增大或缩小窗口。",
],
"## 3. How we measure": [
 "数据经过链路模拟器：一个带限速、单向时延和有界队列的本地代理，行为像真实链路。",
 "测两个量：吞吐量（每秒被确认的字节数）和数据块 RTT；RTT 超出链路自身往返时间的部分，就是聊天消息在文件后面要等的时间。",
 "带宽时延积（速率 × RTT）是让链路一直忙所需的在途字节数。",
],
"## 4. SleepPaced": [
 "在本机上吞吐量约为“块大小 / 暂停时间”，与路径能力无关，即笔记中的“发送时间过长”。",
 "在模拟链路上，暂停太短会让队列越来越长（RTT 升到数百毫秒），太长则让链路空闲。",
 "唯一合适的暂停是“块大小 / 链路速率”，而一个从不听接收方反馈的发送方无从得知。",
],
"## 5. FixedWindow": [
 "窗口 W 每个往返最多送 W 字节：吞吐量沿 W / RTT 上升，直到带宽时延积，之后保持在链路速率。",
 "超过带宽时延积的窗口换不来速度，只换来排队；本机 RTT 极小，会掩盖这个问题。",
 "没有一个固定窗口适合所有链路。",
],
"## 6. AdaptiveWindow": [
 "时间-序号图：绿线斜率是吞吐量，两线的垂直距离是在途数据，水平距离是一个字节从发出到被确认的时间。",
 "慢开始阶段窗口每个往返增大一半并会冲过头，随后按“基准 RTT / RTT”缩小，之后在目标排队时延附近微调。",
 "它在没有被告知链路速率和 RTT 的情况下，接近跑满链路而队列很短；慢速链路上块大小决定了队列的下限。",
],
"## 7. All three": [
 "`SleepPaced` 在快路径上太慢，在慢路径上造成数百毫秒的队列；固定窗口只在恰好接近带宽时延积的链路上合适。",
 "自适应窗口在各条链路上都接近链路速率：确认告诉发送方路径有多快，RTT 告诉它何时开始排队。这正是笔记所问的“类似TCP的连接”，只是为了聊天，在 TCP 之上又做了一次。",
],
"## 8. Measure it": [
 "测量代码在 `chatlab/experiments/`，notebook 和基准测试共用；`python -m chatlab.experiments data` 在你的机器上重新测量并写出 CSV 和图。",
],
"## 9. Exercise: predict": [
 "预测练习用到第 5 节的带宽时延积和排队：先在纸上算，再写成函数。",
 "检查器把你的预测和模拟链路比较；之后的单元格再和真实测量比较。",
 "实测比预测略高几毫秒是正常的（线程唤醒、服务器转发）；差了几倍说明模型漏掉或多算了一个队列。",
],
"## 10. Exercise: a sending strategy": [
 "AIMD（加法增大乘法减小）是 TCP 拥塞控制自 1988 年以来的规则；练习说明给出了它的信号（排队时延）和要求。",
 "在真实路径上 RTT 样本有噪声，一个迟到的样本就会让窗口减半；这就是 `AdaptiveWindow` 取最近四个样本最小值的原因。",
],
"## What to remember": [
 "TCP 已经做了流量控制（接收窗口）和拥塞控制；应用层给文件定节奏，只是因为聊天共用这条连接，交给 TCP 的数据就是聊天消息前面的队列。",
 "块与块之间 `sleep()` 定了一个速度却不问路径：路径快时太慢，路径慢时队列越来越长。",
 "窗口让确认来驱动发送方；窗口至少要等于带宽时延积才能跑满链路，多出的部分只会排队。",
 "自适应窗口两者都测：确认给出速率，RTT 高出最小值揭示队列；不需要任何链路信息就能跑满链路并保持队列很短。",
],
}
P["07_chat_while_sending"] = {
"## 1. Option 2 on the wire": [
 "方案一需要的是第二条**连接**，而不是第二个端口：一个监听端口可以接受任意多条连接，TCP 用四元组区分它们。",
 "方案二：每帧首部带一个 32 位流标识，聊天用 0，每个文件传输一个编号；文件数据块和聊天消息共用一条连接，接收方按流标识区分。",
],
"## 2. The mutex question": [
 "多个线程可以在同一个套接字上 `send()`，但字节流会乱：流套接字上的一次 `send()` 也不是原子的，内核分段复制数据（Linux 上阻塞的 `send()` 在内核里等待而不是提前返回），另一个线程的字节可能插到一帧中间。演示用的 `socketpair()` 在 Linux 上是 `AF_UNIX` 套接字，TCP 也一样。",
 "多个线程发送时，每一帧都要在一把锁下整帧发送。",
 "chatlab 不需要锁：只有一个写线程在套接字上发送，其他线程把帧放进它的优先级队列（控制帧、聊天、文件数据块）。",
 "写线程只能重排自己手里的帧；交给内核的字节在发送缓存里按序排队，所以 chatlab 设置 `TCP_NOTSENT_LOWAT`，让内核只保留少量未发送的数据。",
],
"## 3. Measured": [
 "先进先出的写线程加大窗口：每条聊天消息都要等前面所有数据块，这是进程内的队头阻塞。",
 "优先级写线程只有在内核不囤积数 MB 未发送数据时才有用（128 KiB 的未发送上限）；剩下的等待来自链路队列。",
 "自适应窗口让各处的队列都很短，聊天时延只比裸往返时间多几毫秒；第二条连接（chatlab 的直连路径）则完全不排在文件后面。",
],
"## 4. Option 1 or option 2": [
 "方案一就是 `send_file(..., via=\"direct\")` 打开的直连路径：请求仍经过服务器，文件的字节走一条从 alice 直达 bob 的连接；bob 接受后才监听，alice 用请求里的一次性令牌证明这条连接是她的。",
 "第二条连接在进程、内核和服务器里都把聊天和文件分开，但要多一次握手，而且 bob 那边的端口必须能被 alice 连上；隔着 NAT 或防火墙常常连不上，这时 chatlab 3 秒后改走服务器（`DirectFallback` 事件）。所以默认仍是 `via=\"server\"`，在教室里总能用。在普通 FIFO 瓶颈后，第二条连接的帮助也有限。",
 "一条连接加流标识（chatlab 的选择，也是 HTTP/2、SSH、QUIC 的做法）需要三样东西：优先聊天的写线程、只保留少量未发送数据的内核、让网络队列保持很短的发送方。",
 "有一种队头阻塞任何调度都解决不了：TCP 按序交付，丢一个分组，所有流都要等重传；所以 HTTP/3 改用基于 UDP 的 QUIC。",
],
"## 5. Both options": [
 "在真实链路上两种方案都能跑满链路；在本机上限制它们的只有 CPU，区别在于每个字节要花多少工作。",
 "中转（方案二）时每个数据块要成帧、经服务器读一次写一次、再拆帧；直连（方案一）时内核用 `socket.sendfile()` 直接发送，接收方用 `recv_into` 写进复用的缓冲区，服务器根本看不到这些字节，速度接近 `nc`。",
 "两种方式聊天的中位时延都只有几毫秒：直连是因为聊天从不和文件共用队列，中转是因为自适应窗口让共用的队列保持很短。选哪种是第 4 节的问题（网络能否直连），不是速度问题。",
],
"## 6. Exercise": [
 "两级优先级写线程练习用到第 2 节的结论（谁在套接字上发送、帧如何保持完整）和第 3 节的测量。",
 "聊天消息仍要等已在内核缓存里的数据块：那里没有优先级可言。",
],
"## What to remember": [
 "带流标识的帧让聊天和文件共用一条连接，接收方按流标识区分。",
 "多个线程在一个套接字上发送必须加锁；一个写线程加队列则不需要锁，还能决定发送顺序。",
 "队头阻塞：FIFO 写线程后面，聊天消息要等它前面排队的每个字节；优先级写线程只能消除进程内的等待。",
 "默认情况下内核发送缓存会收下数 MB 数据，写线程够不着；chatlab 用 `TCP_NOTSENT_LOWAT` 限制未发送部分（Windows 上用较小的 `SO_SNDBUF`）。网络中的队列只能靠发送方（自适应窗口）保持很短。",
 "chatlab 的方案一是直连路径 `send_file(..., via=\"direct\")`：请求经过服务器，字节走发送方到接收方的连接（接收方监听，一次性令牌证明连接身份），连不上时退回服务器。它完全不需要调度，在本机上速度接近 `nc`。",
],
}
P["08_four_servers"] = {
"## 1. Blocking": [
 "阻塞服务器一次只服务一个客户端：它阻塞在一个客户端的 `recv()` 上时，别的什么都不做。",
 "其他客户端的 `connect()` 照样成功：内核完成握手并把连接放进连接队列（backlog），它们只能默默等待。",
],
"## 2. A thread per client": [
 "每客户一线程：谁也不用等谁，但房间（连接集合）被所有线程共享，每次使用都要加锁。",
 "代价：每个连接一个线程，而且广播期间一直持有锁，一个不读数据的客户端会拖住所有发送者。",
],
"## 3. One thread and `selectors`": [
 "一个线程的循环只处理不会阻塞的套接字（I/O 复用），这是 chatlab 的设计。",
 "每个连接要自己保存解码器和发送队列；只在队列非空时才关心可写；只有一个线程，所以不需要锁。",
],
"## 4. `asyncio`": [
 "asyncio 写起来像多线程服务器（每个客户端一个协程），运行起来像 selectors 服务器（一个线程、一个事件循环）。",
 "协程只在 `await` 处暂停，两个 `await` 之间不会有别的代码运行，所以房间不需要锁；`writer.write()` 从不阻塞。",
 "asyncio 底层就是 selectors 循环（Windows 默认用基于 IOCP 的 proactor 循环）。",
],
"## 5. Measured": [
 "每个服务器在自己的进程里运行，测量每秒消息数、时延、内存、线程数和每次投递的 CPU 时间。",
 "线程的开销是每连接一个线程；一万个连接就是 C10K 问题，答案是每核一个线程的事件接口：epoll/kqueue 是就绪通知，Windows 的 IOCP 是完成通知。",
 "CPython 的 GIL 让同一时刻只有一个线程执行 Python 代码；线程在等待 I/O 时会释放 GIL。每次投递的 CPU 差距来自系统调用次数：selectors 服务器把帧攒进每个成员的发送队列，一次 `send()` 发出多帧（用 strace 数 `sendto` 调用）。",
 "没有一种服务器处处最好：连接数、是否调用阻塞库、代码的可读性决定选择。",
],
"## Exercise": [
 "`handle_client` 练习用到第 3、4 节：整帧读取、检查首部、广播，以及一个阻塞调用为什么会卡住所有人。",
 "检查器测试离开、复位、垃圾数据和从不读数据的客户端；FAIL 行的提示说明原因。",
 "`MAX_QUEUED` 的含义见练习说明：既不能无限缓冲，也不能让整个房间等最慢的人。",
],
"## What to remember": [
 "阻塞服务器一次服务一个客户端；内核仍会接受其他连接（backlog），它们的 `connect()` 成功后默默等待。",
 "每客户一线程最简单，但共享状态要加锁，每个连接要一个线程；在 GIL 下线程轮流执行 Python 代码。",
 "一个线程加 `selectors` 能服务很多连接（这里测到 64 个客户端，chatlab 的服务器在 `epoll` 上测试过 1000 个；一万个即 C10K 没有测），每个连接有自己的解码器和发送队列，不需要锁，一次 `send()` 发出队列里的多帧；`asyncio` 是同样的循环，只是用 `await` 代替回调，循环里任何一个阻塞调用都会卡住所有人。",
],
}
P["09_when_connections_fail"] = {
"## 1. Half-close": [
 "`shutdown(SHUT_WR)` 只结束我这一方的发送（半关闭）：对方读完数据后 `recv()` 返回 `b''`，但仍可在同一连接上回复。",
 "`b''` 是最终的：之后每次 `recv()` 都立即返回 `b''`，把它当成“暂时没有”的循环会占满 CPU。",
],
"## 2. FIN versus RST": [
 "FIN 是有序的告别（“我发完了”），RST（复位）是异常终止（“这条连接不存在了”）。",
 "以下情况会发 RST：`SO_LINGER` 设为 0 后关闭；关闭时接收缓存里还有未读数据；收到内核不认识的连接的报文段。",
 "对 `recv()` 来说，FIN 是 `b''`，RST 是 `ConnectionResetError`；对方 FIN 之后第一次 `send()` 通常成功，之后才是 `BrokenPipeError`，所以 `send()` 成功从不表示对方已收到。",
],
"## 3. Nobody there": [
 "没有程序监听的端口对 SYN 立即回 RST：`connect()` 抛出 `ConnectionRefusedError`。",
 "SYN 得不到任何回答（防火墙丢弃、主机关机、连接队列已满）时，内核会重传 SYN 长达约两分钟。",
 "规则：`connect()` 一定要带超时（`socket.create_connection(address, timeout=...)`）。",
],
"## 4. Half-open": [
 "对方没有发 FIN 也没有发 RST 就消失了，连接只在我这一方是打开的：半开连接；`send()` 照样成功。没有未确认的数据时 `recv()` 一直等待；有未确认的数据时内核不断重传，最后报 `TimeoutError`（ETIMEDOUT，Linux 约 15 分钟）；对方主机重启过则回 RST。`BlackHole` 模拟的是内核仍在确认的卡死程序。",
 "TCP 保活探测的是对方**内核**，默认空闲 2 小时才开始，各操作系统的选项不同；卡死的程序其内核照样回应探测。",
 "chatlab 的应用层心跳检查对方**程序**是否回应：沉默 `ping_interval` 秒就发 PING，`ping_timeout` 秒内没有回应就断开。",
],
"## Exercise": [
 "重连练习用到第 2 到第 4 节的每一种失败；服务器用 `Pong` 告诉你它已经存了多少（练习说明）。",
 "检查器依次制造拒绝、复位、半开和过早关闭；FAIL 行的提示说明缺了什么。",
],
"## What to remember": [
 "`shutdown(SHUT_WR)` 只结束自己这个方向；读到 `b''`（EOF）才知道对方发完了。",
 "`send()` 成功只表示“已复制进我的内核”，从不表示“对方已收到”。",
 "每次 `connect()`、每次等待回答都要设超时。保活只说明对方内核还在；应用层心跳才说明对方程序还在，这正是聊天服务器需要的。",
 "续传以**对方**确认已收到的为准，而不是以自己以为发出的为准。",
],
"## 5. Non-blocking": [
 "非阻塞套接字上的 `connect()` 只是发起握手，立即返回 `EINPROGRESS`（Windows 上是 `EWOULDBLOCK`）。",
 "连接结束时（无论成败）套接字变为可写；再用 `getsockopt(SOL_SOCKET, SO_ERROR)` 读取结果："
 "0 或阻塞 `connect()` 本会抛出的错误（读一次即被清除）。",
 "这样一个线程可以同时发起多个连接、各有各的超时：事件循环、Happy Eyeballs 和 Python 的 `settimeout()` 都是这"
 "样实现的。",
],
"## 6. The listen backlog": [
 "内核自己完成三次握手，完成的连接在监听套接字的全连接队列里等待 `accept()`；"
 "`listen(backlog)` 决定队列长度（Linux 允许 backlog + 1，上限为 `net.core.somaxconn`）。",
 "队列满时 Linux 丢弃客户端的 SYN，客户端 1 s、2 s、4 s……后重传：在客户端看来就像网络丢包。",
 "进程的文件描述符达到上限时 `accept()` 报 `EMFILE`，连接仍留在队列里、监听套接字仍然可读："
 "只记日志再循环会空转占满 CPU。",
 "对策：提高上限；预留一个备用描述符，遇到 `EMFILE` 时关掉它、接受并立即关闭该连接、再重新打开；"
 "或暂时不监视监听套接字。",
],
"## 7. `SO_LINGER`": [
 "普通 `close()` 会把已排队的数据发完再发 FIN，主动关闭方进入 TIME_WAIT；"
 "`SO_LINGER` 设为 0 后的 `close()` 直接发 RST：排队的数据全部丢弃，"
 "对方收到 `ConnectionResetError` 而不是数据结尾。",
 "`SO_LINGER` 0 不进入 TIME_WAIT，但不要拿它来“解决” `EADDRINUSE`：TIME_WAIT 保护后来的连接，"
 "服务器重启应该用 `SO_REUSEADDR`。",
 "只在确实要中止连接时使用：对方违反协议，或测试需要 RST。",
],
"## 8. Reconnect": [
 "立即重连会猛烈冲击一台已经宕掉的服务器；固定的短暂等待会让同时断开的所有客户端同时回来（惊群）。",
 "指数退避：每失败一次等待时间翻倍，直到上限；随机抖动（“full jitter”）：在 0 到当前上限之间随机取等待时间，"
 "让一起失败的客户端分散开。",
 "实测：不加抖动时 20 个客户端每次都在同一时刻一起重连；加了抖动后重连分散开，服务器恢复后大多数客户端很快回来。",
],
}

P["10_udp"] = {
"## 1. Datagrams": [
 "UDP 发送的是数据报：一次 `sendto()` 对应一次 `recvfrom()`，边界由协议保留，不存在“粘包”，不需要成帧。",
 "`sendto(data, address)` 每次都写明目的地址；`recvfrom()` 返回数据和发送方的地址。",
 "缓冲区比数据报小时，多出的部分被丢弃，不会留给下一次读取；`b''` 是一个空数据报，不是对方关闭（UDP 没有连接，"
 "也没有 FIN）。",
],
"## 2. How large": [
 "IPv4 上 UDP 数据报的数据部分最多 65,507 字节（65,535 减去 20 字节 IP 首部和 8 字节 UDP 首部）；再大一字节，"
 "`sendto()` 立即报 `EMSGSIZE`，什么也不发送。",
 "真实网络上大于 MTU（以太网 1500 字节）的数据报要分片，丢一个分片整个数据报就丢了，"
 "所以实际协议都把数据报控制在 1200～1500 字节以内。",
],
"## 3. Connected UDP": [
 "UDP 套接字上的 `connect()` 不发送任何报文，只是记下默认的对端：之后可以用 `send()`/`recv()`，"
 "内核也只接收来自该对端的数据报。",
 "发往无人监听端口的数据报会换来 ICMP 端口不可达；只有**已连接**的 UDP 套接字会在下一次 `send()`/`recv()` 时得"
 "到 `ConnectionRefusedError`。",
 "未连接的套接字可能同时和许多对端通信，套接字接口无法指出是哪一次 `sendto()` 失败，"
 "所以 POSIX 系统不把 ICMP 错误报告给它（Windows 例外）。",
 "ICMP 会被限速和过滤：判断对方不在，要靠超时，不能只靠 `ECONNREFUSED`。",
],
"## 4. Loss": [
 "`DatagramLink`（`chatlab.netem`）按 `DatagramProfile` 对数据报做丢失、重复、乱序、时延和抖动、限速，"
 "参数与 Linux `tc netem` 一致；给定 `seed` 时每次运行的决定都相同。",
 "乱序有两个来源：netem 式的“跳过时延”，以及抖动大于发送间隔时后发的数据报先到。",
 "突发流量超过瓶颈队列时，多出的尾部被丢弃（尾部丢弃），这是互联网上最常见的丢包原因；接收方不及时读取，"
 "自己的接收缓存也会溢出丢包。",
 "TCP 会把这些全部修复；UDP 应用看到的是原样的网络，要自己决定如何处理。",
],
"## 5. The capture": [
 "抓包同时看到两段路径（客户端→链路，链路→服务器），所以能看出数据报在哪一段丢失：去程丢失时服务器根本没收到，"
 "回程丢失时服务器回答了但客户端没收到。",
 "对客户端来说两种丢失看起来一样（都没有回答）：ping 能统计丢失率，却说不出丢在哪里。",
 "去程被重复的 ping 会得到两个回答；发往关闭端口的数据报换来一条 ICMP 端口不可达，其中写着那个端口号。",
],
"## Exercise": [
 "练习用到本 notebook 的每一节：数据报的边界、`recvfrom()` 给出的发送方地址、丢失、重复和乱序。",
 "检查器的服务器会迟到、重复、不回答，还会让陌生人伪造回答、发来不是回答的数据报；FAIL 行的提示说明缺了什么。",
 "结果与 `ping` 最后两行的内容相同：发送数、收到数、重复数、丢失率，以及 RTT 的最小/平均/最大/mdev（毫秒）。",
],
"## What to remember": [
 "TCP 是字节流，丢失、重复、乱序都由内核修复；UDP 是数据报，网络怎么处理它，应用就原样看到什么。",
 "一次 `sendto()` 对应一次 `recvfrom()`；接收缓冲区要和最大的数据报一样大。",
 "每次等待 UDP 回答都要设超时，并从发送时刻算起；用自己放进去的序号把回答对应到请求，并检查发送方。",
],
}

# (regex, Chinese) in priority order; the first occurrence in a notebook's prose gets the Chinese term.
TERMS = [
 (r"three-way handshake", "三次握手"),
 (r"TIME_WAIT", "时间等待状态"),
 (r"active closer", "主动关闭方"),
 (r"maximum segment lifetime", "最长报文段寿命"),
 (r"listening socket", "监听套接字"),
 (r"ephemeral port", "临时端口"),
 (r"backlog", "连接队列"),
 (r"loopback", "环回接口"),
 (r"socket", "套接字"),
 (r"port", "端口"),
 (r"half-close", "半关闭"),
 (r"half-open", "半开连接"),
 (r"non-blocking", "非阻塞"),
 (r"head-of-line blocking", "队头阻塞"),
 (r"(?<!line )blocking", "阻塞"),
 (r"timeout", "超时"),
 (r"readable", "可读", ("02", "05")),
 (r"writable", "可写", ("02", "05")),
 (r"busy loop", "忙等"),
 (r"out-of-band", "带外数据"),
 (r"file descriptor", "文件描述符"),
 (r"event loop", "事件循环"),
 (r"keepalive", "保活"),
 (r"reset", "复位"),
 (r"connection refused", "连接被拒绝"),
 (r"retransmit", "重传"),
 (r"network byte order", "网络字节序"),
 (r"byte order", "字节序"),
 (r"big-endian", "大端序"),
 (r"little-endian", "小端序"),
 (r"padding", "填充"),
 (r"(?:byte stream|stream of bytes)", "字节流"),
 (r"framing", "成帧"),
 (r"delimiter", "分隔符"),
 (r"length prefix", "长度前缀"),
 (r"header", "首部"),
 (r"payload", "数据部分"),
 (r"magic byte", "魔数"),
 (r"receive buffer", "接收缓存"),
 (r"send buffer", "发送缓存"),
 (r"broadcast", "广播"),
 (r"whisper", "私聊"),
 (r"token bucket", "令牌桶"),
 (r"stream id", "流标识"),
 (r"mutex", "互斥锁"),
 (r"priority", "优先级"),
 (r"flow control", "流量控制"),
 (r"congestion control", "拥塞控制"),
 (r"congestion window", "拥塞窗口"),
 (r"receive window", "接收窗口"),
 (r"slow start", "慢开始"),
 (r"bandwidth-delay product", "带宽时延积"),
 (r"round[- ]trip time", "往返时间"),
 (r"queueing delay", "排队时延"),
 (r"throughput", "吞吐量"),
 (r"bottleneck", "瓶颈"),
 (r"in flight", "在途"),
 (r"fixed window", "固定窗口"),
 (r"adaptive window", "自适应窗口"),
 (r"cumulative acknowledgement", "累积确认"),
 (r"thread per client", "每客户一线程"),
 (r"coroutine", "协程"),
 (r"GIL", "全局解释器锁"),
]

TAG = "zh-key-points"
HEAD = "**本节要点**"

def is_points(cell):
    return cell.cell_type == "markdown" and TAG in cell.get("metadata", {}).get("tags", [])

def protected_spans(text):
    """Spans not to touch: fenced code, inline code, link targets, headings, block quotes, HTML, italic translations."""
    spans = []
    for m in re.finditer(r"```.*?```", text, re.S): spans.append(m.span())
    for m in re.finditer(r"`[^`\n]*`", text): spans.append(m.span())
    for m in re.finditer(r"\]\([^)]*\)", text): spans.append(m.span())
    for m in re.finditer(r"^(#|>|<).*$", text, re.M): spans.append(m.span())
    for m in re.finditer(r"^\*\(.*?\)\*\s*$", text, re.M | re.S): spans.append(m.span())  # *(translation of a quote)*
    # a term already annotated, with the words before it: "listening socket（监听套接字）" holds no "socket" to annotate
    for m in re.finditer(r"[\w*'-]+(?: [\w*'-]+){0,3}（[\u4e00-\u9fff]+）", text): spans.append(m.span())
    return spans

def inside(pos, end, spans):
    return any(a < end and pos < b for a, b in spans)

def annotate(nb, name):
    md = [c for c in nb.cells if c.cell_type == "markdown" and not is_points(c)]
    prose = "\n".join(c.source for c in md)
    # Chinese the notebook had before any annotation (the seed notes' quotes, 粘包): a term already there is left alone
    original = re.sub(r"（[\u4e00-\u9fff]+）", "", prose)
    added = []
    for pattern, zh, *only in TERMS:
        if only and name[:2] not in only[0]:
            continue
        if zh in original or "（" + zh + "）" in prose:
            continue
        rx = re.compile(r"(?<![\w-])" + pattern + r"(?:s|es)?(?![\w'’-])", re.I)
        for cell in md:
            text = cell.source
            spans = protected_spans(text)
            hit = next((m for m in rx.finditer(text) if not inside(m.start(), m.end(), spans)), None)
            if hit is None:
                continue
            end = hit.end()
            # extend over a closing bold/italic marker that wraps the term
            before = text[:hit.start()]
            for marker in ("**", "*"):
                if before.endswith(marker) and text[end:end + len(marker)] == marker:
                    end += len(marker)
                    break
            new = text[:end] + "（" + zh + "）" + text[end:]
            cell.source = new
            prose = "\n".join(c.source for c in md)
            added.append(text[max(0, hit.start() - 30):hit.start()].replace("\n", " ") + "[" + new[hit.start():end + len(zh) + 4].replace("\n", " ") + "]")
            break
    return added

def split_headings(nb):
    """A '## ' heading in the middle of a markdown cell starts a new cell, so a section ends at a cell boundary."""
    i = 0
    while i < len(nb.cells):
        cell = nb.cells[i]
        if cell.cell_type == "markdown" and not is_points(cell):
            lines = cell.source.split("\n")
            fenced = False
            for j, line in enumerate(lines):
                if line.startswith("```"):
                    fenced = not fenced
                if j > 0 and not fenced and line.startswith("## "):
                    cell.source = "\n".join(lines[:j]).rstrip("\n")
                    nb.cells.insert(i + 1, nbformat.v4.new_markdown_cell("\n".join(lines[j:])))
                    break
        i += 1


def sections(nb):
    """[(heading line, index of the section's last cell)] for every '## ' section."""
    starts = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## ")]
    out = []
    for k, i in enumerate(starts):
        end = (starts[k + 1] if k + 1 < len(starts) else len(nb.cells)) - 1
        out.append((nb.cells[i].source.splitlines()[0], end))
    return out

def add_points(nb, name):
    table = P[name]
    used, missing = set(), []
    for heading, last in reversed(sections(nb)):
        key = next((k for k in table if heading.startswith(k)), None)
        if key is None:
            missing.append(heading); continue
        used.add(key)
        if is_points(nb.cells[last]):
            nb.cells[last].source = render(table[key])
            continue
        cell = nbformat.v4.new_markdown_cell(render(table[key]), metadata={"tags": [TAG]})
        nb.cells.insert(last + 1, cell)
    return missing, sorted(set(table) - used)

def render(points):
    return HEAD + "\n\n" + "\n".join("* " + p for p in points)


def main(paths: list[str]) -> None:
    for path in paths:
        name = os.path.basename(path)[: -len(".ipynb")]
        if name not in P:
            print("skip", path)
            continue
        nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        split_headings(nb)
        added = annotate(nb, name)
        missing, unused = add_points(nb, name)
        nbformat.validate(nb)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(nbformat.writes(nb) + "\n")
        print(f"{name}: {len(added)} terms added; sections without points: {missing}; points not used: {unused}")
        for line in added:
            print("    ", line)


if __name__ == "__main__":
    main(sys.argv[1:])
