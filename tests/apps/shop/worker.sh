# Every half second: a row in PostgreSQL and a count in Redis, and what both say.
set -u
until psql "$DATABASE_URL" -qc "create table if not exists ticks (at timestamptz default now())" 2>/dev/null; do
  echo "worker: waiting for postgres"
  sleep 0.5
done
while true; do
  rows=$(psql "$DATABASE_URL" -qtAc "insert into ticks default values; select count(*) from ticks")
  hits=$(printf 'INCR ticks\r\n' | busybox nc -w 2 "${REDIS_ADDR%:*}" "${REDIS_ADDR#*:}" | tr -d ':\r')
  echo "worker: postgres has ${rows:-?} ticks, redis counted ${hits:-?}"
  sleep 0.5
done
