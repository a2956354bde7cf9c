#!/usr/bin/env bash
# Session events over real HTTP: SSE framing exactly as clients parse it, send
# validation (all-or-nothing), who may send what, history filters and cursors.
. "$(dirname "$0")/lib/common.sh"
start_server
K=testkey
req $K POST /v1/environments '{"name":"ev","config":{"type":"self_hosted"}}'
ENV=$(jget 'j["id"]')
req $K POST /v1/agents '{"name":"a","model":"claude-test"}'
AGENT=$(jget 'j["id"]')
req $K POST "/v1/environments/$ENV/keys" '{}'
EK=$(jget 'j["key"]')
req $K POST /v1/sessions "{\"agent\":\"$AGENT\",\"environment_id\":\"$ENV\"}"
SID=$(jget 'j["id"]')

# Stream first, then send: the echo arrives as one well-formed frame.
curl -sN "$BASE/v1/sessions/$SID/events/stream?event_deltas%5B%5D=agent.message" \
	-H "x-api-key: $K" -D "$T_TMP/stream.head" >"$T_TMP/stream.out" &
T_PIDS+=($!)
sleep 0.3
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"hello\nworld"}]}]}'
check "send answers the echoed events" eq "$(jget 'j["data"][0]["type"]')" user.message
EV=$(jget 'j["data"][0]["id"]')
check "user.message is queued (processed_at null)" eq "$(jget 'j["data"][0]["processed_at"]')" None
for _ in $(seq 50); do grep -q "^data: " "$T_TMP/stream.out" && break; sleep 0.05; done
check "stream is text/event-stream" grep -qi '^content-type: text/event-stream' "$T_TMP/stream.head"
check "stream frame has id: line" grep -qx "id: $EV" "$T_TMP/stream.out"
check "stream frame has event: equal to the type" grep -qx "event: user.message" "$T_TMP/stream.out"
DATA=$(sed -n 's/^data: //p' "$T_TMP/stream.out" | head -1)
check "data is one line of JSON whose type matches" \
	python3 -c "import json,sys; e=json.loads(sys.argv[1]); assert e['type']=='user.message' and e['id']=='$EV' and e['content'][0]['text']=='hello\nworld'" "$DATA"

# Event ids are the server's: one a client chose (with a CR/LF an SSE id: line cannot
# carry) is replaced, and the event reaches the stream under the minted id.
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","id":"sevt_evil\r\nevent: x","content":[{"type":"text","text":"chosen id"}]}]}'
check "an event with a client-chosen id is accepted" eq "$STATUS" 200
EV2=$(jget 'j["data"][0]["id"]')
check "its id is minted by the server" python3 -c "import sys,re; assert re.fullmatch(r'sevt_[A-Za-z0-9]+', sys.argv[1])" "$EV2"
for _ in $(seq 50); do grep -qx "id: $EV2" "$T_TMP/stream.out" && break; sleep 0.05; done
check "it reaches the stream under that id" grep -qx "id: $EV2" "$T_TMP/stream.out"
req $K GET "/v1/sessions/$SID/events?types[]=user.message"
check "history has it under that id" python3 -c "import json,sys; d=json.loads(sys.argv[1])['data']; assert [e for e in d if e['id']=='$EV2' and e['content'][0]['text']=='chosen id']" "$BODY"

# U+0000 in an event's text is kept as U+FFFD (tool output may hold any byte; decisions.md);
# other bodies still refuse it.
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"a\u0000b"}]}]}'
check "a NUL in event text is accepted" eq "$STATUS" 200
check "and stored as U+FFFD" python3 -c "import json,sys; assert json.loads(sys.argv[1])['data'][0]['content'][0]['text']=='a\ufffdb'" "$BODY"
req $K POST /v1/agents '{"name":"a\u0000b","model":"claude-test"}'
check "a NUL elsewhere is still 400" eq "$STATUS" 400

req $K GET "/v1/sessions/$SID/events/stream?event_deltas[]=agent.tool_use"
check "event_deltas outside message/thinking is 400" eq "$STATUS" 400

# Validation is all-or-nothing: a bad second event stores nothing.
# (The agent loop may append its own events meanwhile; count the user's.)
USER_TYPES='types[]=user.message&types[]=user.tool_result&types[]=user.tool_confirmation'
req $K GET "/v1/sessions/$SID/events?$USER_TYPES"
BEFORE=$(jget 'len(j["data"])')
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"x"}]},{"type":"user.bogus"}]}'
check "unknown event type is 400" eq "$STATUS" 400
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.tool_result","tool_use_id":"sevt_nope","content":[]}]}'
check "result for an unknown tool_use id is 400" eq "$STATUS" 400
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.tool_confirmation","tool_use_id":"sevt_nope","result":"maybe"}]}'
check "confirmation with a bad result is 400" eq "$STATUS" 400
req $K POST "/v1/sessions/$SID/events" '{"events":[]}'
check "empty events is 400" eq "$STATUS" 400
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","content":"not an array"}]}'
check "content must be an array" eq "$STATUS" 400
req $K POST "/v1/sessions/$SID/events" '{"events":[],"extra":1}'
check "unknown top-level field is 400" eq "$STATUS" 400
req $K GET "/v1/sessions/$SID/events?$USER_TYPES"
check "nothing was stored by rejected sends" eq "$(jget 'len(j["data"])')" "$BEFORE"

req $EK POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.message","content":[{"type":"text","text":"x"}]}]}'
check "an environment key cannot speak for the user" eq "$STATUS" 403
req $EK GET "/v1/sessions/sesn_doesnotexist/events"
check "unknown session is 404" eq "$STATUS" 404

# History: order, filters, cursor.
for i in 1 2 3 4; do
	req $K POST "/v1/sessions/$SID/events" "{\"events\":[{\"type\":\"user.message\",\"content\":[{\"type\":\"text\",\"text\":\"n$i\"}]}]}"
done
req $K POST "/v1/sessions/$SID/events" '{"events":[{"type":"user.interrupt"}]}'
req $K GET "/v1/sessions/$SID/events?types%5B%5D=user.interrupt"
check "types[] filter" eq "$(jget '[e["type"] for e in j["data"]]')" "['user.interrupt']"
req $K GET "/v1/sessions/$SID/events?limit=2&types[]=user.message"
check "limit=2 gives two" eq "$(jget 'len(j["data"])')" 2
P=$(jget 'j["next_page"]')
FIRST=$(jget 'j["data"][0]["id"]')
req $K GET "/v1/sessions/$SID/events?limit=2&types[]=user.message&page=$P"
check "the next page continues after the first" python3 -c "import json,sys; d=json.loads(sys.argv[1])['data']; assert len(d)==2 and d[0]['id']!='$FIRST'" "$BODY"
req $K GET "/v1/sessions/$SID/events?limit=2&order=desc&page=$P"
check "reusing a cursor with another order is 400" eq "$STATUS" 400
req $K GET "/v1/sessions/$SID/events?order=desc&limit=1&types=user.message,user.interrupt"
check "order=desc starts with the newest" eq "$(jget 'j["data"][0]["type"]')" user.interrupt
req $K GET "/v1/sessions/$SID/events?created_at%5Bgte%5D=not-a-time"
check "bad time filter is 400" eq "$STATUS" 400
req $K GET "/v1/sessions/$SID/events?limit=0"
check "limit=0 is 400" eq "$STATUS" 400
finish
