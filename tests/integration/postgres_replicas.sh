#!/usr/bin/env bash
# Two server replicas on one PostgreSQL database (tests/integration/lib/postgres.sh): work
# queued through one is claimed through either, and 40 items polled for by 80 concurrent
# polls spread over both replicas are each delivered exactly once (claims take the row
# with FOR UPDATE SKIP LOCKED; a claim that lost a race takes the next row, never the
# same one); acks, heartbeats and the session's state are seen the same on both.
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/postgres.sh"
pg_require
export PGPASSWORD=$PG_PASSWORD
openssl rand -hex 32 >"$T_TMP/master.key"
chmod 600 "$T_TMP/master.key"

DATA_DIR=$T_TMP/a start_server AIRLOCK_DATABASE_URL="$PG_URL" AIRLOCK_MASTER_KEY_FILE="$T_TMP/master.key"
A=$BASE
DATA_DIR=$T_TMP/b start_server AIRLOCK_DATABASE_URL="$PG_URL" AIRLOCK_MASTER_KEY_FILE="$T_TMP/master.key"
B=$BASE

BASE=$A
idle_session
N=40
for _ in $(seq 2 $N); do
	req testkey POST /v1/sessions "{\"agent\":\"$AG\",\"environment_id\":\"$ENV\"}"
done
BASE=$B
req testkey GET "/v1/sessions/$SID"
check "replica B reads the session made on A" eq "$STATUS" 200
req testkey GET "/v1/environments/$ENV/work/stats"
check "replica B counts the $N items queued on A" eq "$(jget 'j["depth"]')" "$N"

# 80 polls at once, half on each replica, each answering one item or null
mkdir -p "$T_TMP/polls"
polls=()
for i in $(seq 80); do
	if [ $((i % 2)) = 0 ]; then base=$A; else base=$B; fi
	curl -s -o "$T_TMP/polls/$i" "$base/v1/environments/$ENV/work/poll?block_ms=1" \
		-H "Authorization: Bearer $EK" &
	polls+=($!)
done
wait "${polls[@]}" # not the servers
ids=$(for f in "$T_TMP"/polls/*; do
	python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["id"]) if j and "id" in j else None' "$f"
done | sort)
delivered=$(grep -c . <<<"$ids")
distinct=$(sort -u <<<"$ids" | grep -c .)
dups=$(uniq -d <<<"$ids" | tr '\n' ' ')
check "no item delivered twice by concurrent polls on two replicas (twice: $dups)" eq "$delivered" "$distinct"
check "every one of the $N items was delivered (got $distinct)" eq "$distinct" "$N"

# one delivery's sessions token: ack through A, heartbeats fenced across both replicas
f=$(grep -l '"id"' "$T_TMP"/polls/* | head -1)
BODY=$(cat "$f")
WID=$(jget 'j["id"]')
SECRET=$(jget 'j["secret"]')
TOK=$(python3 -c "import base64,json,sys; s=sys.argv[1]; print(json.loads(base64.urlsafe_b64decode(s+'='*(-len(s)%4)))['sessions_token'])" "$SECRET")
BASE=$A
req "$TOK" POST "/v1/environments/$ENV/work/$WID/ack"
check "ack through replica A (token minted by whichever replica delivered)" eq "$(jget 'j["state"]')" starting
BASE=$B
req "$TOK" POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=NO_HEARTBEAT&desired_ttl_seconds=600"
check "first heartbeat through replica B wins" eq "$(jget 'j["lease_extended"]')" True
BASE=$A
req "$TOK" POST "/v1/environments/$ENV/work/$WID/heartbeat?expected_last_heartbeat=NO_HEARTBEAT"
check "a second NO_HEARTBEAT through replica A is fenced (412)" eq "$STATUS" 412
finish
