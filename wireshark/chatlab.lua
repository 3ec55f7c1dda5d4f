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

local chatlab = Proto("chatlab", "chatlab chat protocol")

local HEADER_SIZE = 12
local MAGIC = 0xC4
local VERSION = 1
local INCOMING_STREAM_BIT = 0x80000000

local frame_types = {
    [0x01] = "HELLO", [0x02] = "WELCOME", [0x03] = "ERROR", [0x04] = "PING",
    [0x05] = "PONG", [0x06] = "QUIT",
    [0x10] = "SAY", [0x11] = "WHISPER", [0x12] = "JOIN", [0x13] = "LEAVE", [0x14] = "WHO",
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
        if available < HEADER_SIZE then  -- half a header: ask TCP for the next segment
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            break
        end
        if tvb(offset, 1):uint() ~= MAGIC then
            if offset == 0 then
                local item = tree:add(chatlab, tvb(offset))
                item:add_proto_expert_info(ef_not_chatlab)
                pinfo.cols.protocol = "chatlab"
                pinfo.cols.info = "not a chatlab frame"
                return total
            end
            break
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
    if not chatlab.prefs.heuristic or tvb:len() < 3 then return false end
    if tvb(0, 1):uint() ~= MAGIC or tvb(1, 1):uint() ~= VERSION or not frame_types[tvb(2, 1):uint()] then
        return false
    end
    pinfo.conversation = chatlab  -- the rest of this connection goes to chatlab directly
    chatlab.dissector(tvb, pinfo, tree)
    return true
end
chatlab:register_heuristic("tcp", heuristic)
