"""The sans-I/O core: the chat rules, the file relay and the wire formats, with no sockets.

Everything here takes bytes, messages and the time as arguments and answers with
messages and bytes to send, the way h11 and wsproto do; the sockets live one layer up
(:mod:`chatlab.server`, :mod:`chatlab.client`).  Importing this package loads no
``socket`` or ``selectors`` (a test checks it), so it can be
read, tested and reused without a network.

- :mod:`~chatlab.core.protocol`: chatlab's binary frames and the messages they carry;
- :mod:`~chatlab.core.irc`: the same messages as IRC text lines (RFC 1459/2812);
- :mod:`~chatlab.core.codecs`: which of the two a connection speaks, from its first bytes;
- :mod:`~chatlab.core.chatroom`: nicknames, rooms, whispers, flood control;
- :mod:`~chatlab.core.relay`: passing file transfers between two clients;
- :mod:`~chatlab.core.transfer`: a file's sender and receiver state, and the pacing strategies.
"""
