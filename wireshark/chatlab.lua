-- chatlab.lua: a Wireshark dissector for the chatlab wire protocol (docs/PROTOCOL.md).
--
-- Every chatlab message is a frame: a 12-byte header (magic 0xC4, version 1,
-- type, flags, stream id u32, length u32, big-endian) and `length` bytes of
-- payload: compact UTF-8 JSON, or packed binary for FILE_CHUNK and FILE_ACK.
--
-- Install: copy this file into Wireshark's personal Lua plugins folder (see
-- wireshark/README.md), or run  wireshark -X lua_script:chatlab.lua  /
-- tshark -X lua_script:chatlab.lua.  Display filter: chatlab (chatlab.type == 0x10,
-- chatlab.stream_id, chatlab.json contains "alice", ...).
--
-- TCP is a byte stream: one segment may carry half a frame or several frames.
-- The dissector asks TCP to reassemble (desegment) until a whole frame is there,
-- and shows every frame a segment completes.
--
-- The chatlab port also speaks IRC (docs/IRC.md): as the server does, a connection
-- whose bytes do not start with the magic 0xC4 *and* a version byte (1, or below 0x40
-- for another version) is text, handed to Wireshark's own IRC dissector.  (GBK text
-- may start with 0xC4: "\xc4\xe3" is 你.)  A second protocol, chatlab_direct, finds the
-- direct path's connections (a file sent client to client, on a port of its own): a
-- 32-hex-digit token first, then the file's bytes, then its SHA-256.

local chatlab = Proto("chatlab", "chatlab chat protocol")

local HEADER_SIZE = 12
local MAGIC = 0xC4
local VERSION = 1
local INCOMING_STREAM_BIT = 0x80000000

local frame_types = {
    [0x01] = "HELLO", [0x02] = "WELCOME", [0x03] = "ERROR", [0x04] = "PING",
    [0x05] = "PONG", [0x06] = "QUIT",
    [0x10] = "SAY", [0x11] = "WHISPER", [0x12] = "JOIN", [0x13] = "LEAVE", [0x14] = "WHO",
    [0x15] = "NICK", [0x16] = "KICK", [0x17] = "TOPIC", [0x18] = "MODE", [0x19] = "INVITE",
    [0x1A] = "AWAY", [0x1B] = "OPER", [0x1C] = "WALLOPS",
    [0x20] = "CHAT", [0x21] = "PRIVATE", [0x22] = "NOTICE", [0x23] = "WHO_REPLY",
    [0x30] = "FILE_OFFER", [0x31] = "FILE_ACCEPT", [0x32] = "FILE_REJECT",
    [0x33] = "FILE_CHUNK", [0x34] = "FILE_ACK", [0x35] = "FILE_DONE", [0x36] = "FILE_CANCEL",
}
local FILE_CHUNK, FILE_ACK = 0x33, 0x34

local f = chatlab.fields
f.magic = ProtoField.uint8("chatlab.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("chatlab.version", "Version", base.DEC)
f.type = ProtoField.uint8("chatlab.type", "Type", base.HEX, frame_types)
f.flags = ProtoField.uint8("chatlab.flags", "Flags", base.HEX)
f.stream_id = ProtoField.uint32("chatlab.stream_id", "Stream id", base.HEX)
f.incoming = ProtoField.bool("chatlab.stream_id.incoming", "Numbered by the server (forwarded to this client)", 32,
    nil, INCOMING_STREAM_BIT)
f.length = ProtoField.uint32("chatlab.length", "Payload length", base.DEC)
f.json = ProtoField.string("chatlab.json", "JSON", base.UNICODE)
f.chunk_offset = ProtoField.uint64("chatlab.chunk.offset", "Chunk offset", base.DEC)
f.chunk_data = ProtoField.bytes("chatlab.chunk.data", "Chunk data")
f.chunk_size = ProtoField.uint32("chatlab.chunk.size", "Chunk data length", base.DEC)
f.ack_received = ProtoField.uint64("chatlab.ack.received", "Bytes received (cumulative)", base.DEC)

local ef_not_chatlab = ProtoExpert.new("chatlab.not_chatlab", "Not a chatlab frame (bad magic byte)",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_version = ProtoExpert.new("chatlab.bad_version", "Unsupported protocol version",
    expert.group.MALFORMED, expert.severity.ERROR)
local ef_type = ProtoExpert.new("chatlab.unknown_type", "Unknown frame type",
    expert.group.MALFORMED, expert.severity.WARN)
local ef_short = ProtoExpert.new("chatlab.short_payload", "Payload too short for this frame type",
    expert.group.MALFORMED, expert.severity.ERROR)
chatlab.experts = { ef_not_chatlab, ef_version, ef_type, ef_short }

chatlab.prefs.port = Pref.uint("TCP port", 7777, "The TCP port chatlab runs on (the server's port)")
chatlab.prefs.heuristic = Pref.bool("Find chatlab on any port", true,
    "Recognise chatlab by its first bytes (0xC4 0x01 and a known type) on any TCP port")

local json_dissector = Dissector.get("json")
local irc_dissector = nil  -- Wireshark's own, looked up on first use (it may register after this script loads)

-- Is this the start of chatlab frames?  As chatlab.core.codecs.sniff decides: the magic byte,
-- then the version (or a byte below 0x40: frames of another version).  Text never has that.
local function looks_binary(tvb, offset)
    if tvb(offset, 1):uint() ~= MAGIC then return false end
    if tvb:len() - offset < 2 then return true end  -- one byte 0xC4: undecided, wait for the next
    local version = tvb(offset + 1, 1):uint()
    return version == VERSION or version < 0x40
end

-- Text on the chatlab port is IRC: Wireshark's IRC dissector shows it (or plain lines without one).
local function dissect_text(tvb, pinfo, tree)
    if irc_dissector == nil then  -- by name where Wireshark registers one, else the one on IRC's port 6667
        local ok, found = pcall(Dissector.get, "irc")
        if not (ok and found) then
            ok, found = pcall(function() return DissectorTable.get("tcp.port"):get_dissector(6667) end)
        end
        irc_dissector = (ok and found) or false
    end
    if irc_dissector then
        return irc_dissector:call(tvb, pinfo, tree)
    end
    pinfo.cols.protocol = "IRC (chatlab)"
    tree:add(chatlab, tvb(), "IRC text on the chatlab port")
    return tvb:len()
end

-- One frame that is wholly inside tvb at `offset`; returns a short summary for the Info column.
local function dissect_frame(tvb, pinfo, tree, offset)
    local ftype = tvb(offset + 2, 1):uint()
    local stream_id = tvb(offset + 4, 4):uint()
    local length = tvb(offset + 8, 4):uint()
    local name = frame_types[ftype] or string.format("0x%02x", ftype)
    local item = tree:add(chatlab, tvb(offset, HEADER_SIZE + length))
    item:append_text(", " .. name)

    local header = item:add(tvb(offset, HEADER_SIZE), "Header")
    header:add(f.magic, tvb(offset, 1))
    local version = header:add(f.version, tvb(offset + 1, 1))
    if tvb(offset + 1, 1):uint() ~= VERSION then version:add_proto_expert_info(ef_version) end
    local type_item = header:add(f.type, tvb(offset + 2, 1))
    if not frame_types[ftype] then type_item:add_proto_expert_info(ef_type) end
    header:add(f.flags, tvb(offset + 3, 1))
    local sid = header:add(f.stream_id, tvb(offset + 4, 4))
    if stream_id ~= 0 then sid:add(f.incoming, tvb(offset + 4, 4)) end
    header:add(f.length, tvb(offset + 8, 4))

    local summary = name
    if stream_id ~= 0 then summary = summary .. string.format(" sid=0x%x", stream_id) end
    if length == 0 then return summary end
    local payload = tvb(offset + HEADER_SIZE, length)
    if ftype == FILE_CHUNK then
        if length < 8 then item:add_proto_expert_info(ef_short); return summary end
        local chunk_offset = payload(0, 8):uint64()
        item:add(f.chunk_offset, payload(0, 8))
        item:add(f.chunk_size, length - 8):set_generated()
        if length > 8 then item:add(f.chunk_data, payload(8, length - 8)) end
        summary = summary .. " offset=" .. tostring(chunk_offset)
    elseif ftype == FILE_ACK then
        if length ~= 8 then item:add_proto_expert_info(ef_short); return summary end
        item:add(f.ack_received, payload(0, 8))
        summary = summary .. " received=" .. tostring(payload(0, 8):uint64())
    else
        item:add(f.json, payload, payload:string(ENC_UTF_8))
        if json_dissector then  -- a tree of the JSON object too, when Wireshark's JSON dissector is there
            pcall(function() json_dissector:call(payload:tvb(), pinfo, item) end)
        end
    end
    return summary
end

function chatlab.dissector(tvb, pinfo, tree)
    local total = tvb:len()
    local offset = 0
    local summaries = {}
    while offset < total do
        local available = total - offset
        if available < HEADER_SIZE and tvb(offset, 1):uint() == MAGIC then  -- half a header: ask TCP for the next segment
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        if not looks_binary(tvb, offset) then
            if offset == 0 then return dissect_text(tvb, pinfo, tree) end  -- an IRC client's lines
            local item = tree:add(chatlab, tvb(offset))
            item:add_proto_expert_info(ef_not_chatlab)
            break
        end
        if tvb(offset + 1, 1):uint() ~= VERSION then  -- another version: its length means nothing to us
            local item = tree:add(chatlab, tvb(offset))
            item:add(f.version, tvb(offset + 1, 1)):add_proto_expert_info(ef_version)
            pinfo.cols.protocol = "chatlab"
            pinfo.cols.info = "chatlab frames of another version"
            return total
        end
        local need = HEADER_SIZE + tvb(offset + 8, 4):uint()
        if available < need then  -- the frame continues in later segments: reassemble
            pinfo.desegment_offset = offset
            pinfo.desegment_len = need - available
            break
        end
        summaries[#summaries + 1] = dissect_frame(tvb, pinfo, tree, offset)
        offset = offset + need
    end
    if #summaries > 0 then
        pinfo.cols.protocol = "chatlab"
        pinfo.cols.info = table.concat(summaries, ", ")
    end
    return total
end

-- Registration on the preference's port ("Decode As..." lists chatlab for any TCP port too).
local tcp_port = DissectorTable.get("tcp.port")
local registered_port = 0
local function register_port()
    if registered_port ~= 0 then tcp_port:remove(registered_port, chatlab) end
    registered_port = chatlab.prefs.port
    if registered_port ~= 0 then tcp_port:add(registered_port, chatlab) end
end
function chatlab.prefs_changed() register_port() end
register_port()

-- Heuristic: a connection whose first payload starts with 0xC4 0x01 and a known
-- type is chatlab, whatever the port (the captures in chatlab/data/captures use random ports).
local function heuristic(tvb, pinfo, tree)
    if not chatlab.prefs.heuristic or tvb:len() < 1 or tvb(0, 1):uint() ~= MAGIC then return false end
    -- A first frame split after 1 or 2 bytes is still a first frame: claim the connection and reassemble.
    if tvb:len() >= 2 and tvb(1, 1):uint() ~= VERSION then return false end
    if tvb:len() >= 3 and not frame_types[tvb(2, 1):uint()] then return false end
    pinfo.conversation = chatlab  -- the rest of this connection goes to chatlab directly
    chatlab.dissector(tvb, pinfo, tree)
    return true
end
chatlab:register_heuristic("tcp", heuristic)

-- ------------------------------------------------------------------ the direct path
-- A file sent with --direct goes client to client on a port of its own: the sender writes the
-- 32-hex-digit token from its FILE_OFFER, the file's bytes, then the SHA-256 (32 raw bytes).
-- Capture it with a filter on the receiver's address (the port is in FILE_ACCEPT's "direct"
-- field), e.g.  tcp portrange 1024-65535 and host 127.0.0.1,  and this heuristic finds it.

local direct = Proto("chatlab_direct", "chatlab direct file transfer")
local df = direct.fields
df.token = ProtoField.string("chatlab_direct.token", "Token (from FILE_OFFER)", base.ASCII)
df.data = ProtoField.bytes("chatlab_direct.data", "File data")
direct.prefs.heuristic = Pref.bool("Find direct transfers", true,
    "Recognise a connection whose first 32 bytes are hex digits as a chatlab direct transfer")

local tcp_seq = Field.new("tcp.seq")  -- relative: 1 is the connection's first byte

local function is_token(tvb)
    if tvb:len() < 32 then return false end
    return tvb(0, 32):string():match("^[0-9a-f]+$") ~= nil
end

function direct.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "chatlab-direct"
    local item = tree:add(direct, tvb())
    local seq = tcp_seq()
    if seq ~= nil and seq.value == 1 and is_token(tvb) then
        item:add(df.token, tvb(0, 32))
        if tvb:len() > 32 then item:add(df.data, tvb(32)) end
        pinfo.cols.info = "token " .. tvb(0, 32):string() .. string.format(", %d bytes of file", tvb:len() - 32)
    else
        item:add(df.data, tvb())
        pinfo.cols.info = string.format("%d bytes of file (the last 32 of the stream: its SHA-256)", tvb:len())
    end
    return tvb:len()
end

local function direct_heuristic(tvb, pinfo, tree)
    if not direct.prefs.heuristic or not is_token(tvb) then return false end
    local seq = tcp_seq()
    if seq == nil or seq.value ~= 1 then return false end  -- only a connection's first bytes
    pinfo.conversation = direct
    -- the first segment holds the token; later segments of the connection are file data
    direct.dissector(tvb, pinfo, tree)
    return true
end
direct:register_heuristic("tcp", direct_heuristic)
