#!/usr/bin/env bash
# bench_cli_stack's floor: what a hand-written script does to bring up the
# sample stack (samples/roadie.yaml) and tear it down. It starts the same three
# servers with the same arguments (redis-server; the sample app; nginx with
# the sample's configuration in a fresh directory), each once the one before
# accepts connections, runs the same seed (redis-cli SET), polls each port
# every 1 ms (a connect from bash, no fork; then sleep 0.001), then kills
# them all and waits for them. No readiness beyond a connect, no logs, no
# ports reserved, no cleanup if it is killed: the floor.
#
#   bench_cli_stack_floor.sh REDIS_PORT APP_PORT WEB_PORT APP_BINARY
set -u
redis_port=$1 app_port=$2 web_port=$3 app=$4

wait_port() {
  until : 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$1"; do sleep 0.001; done
}

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null &
redis=$!
wait_port "$redis_port"
redis-cli -p "$redis_port" SET greeting "hello from roadie" >/dev/null

"$app" --port "$app_port" --redis-port "$redis_port" >/dev/null 2>&1 &
app_pid=$!
wait_port "$app_port"

d=$(mktemp -d -t roadie-bench-nginx.XXXXXX) || exit 1
chmod 755 "$d"
cat > "$d/nginx.conf" <<CONF
worker_processes 1;
pid $d/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $d/client_body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  server {
    listen 127.0.0.1:$web_port;
    location / { proxy_pass http://127.0.0.1:$app_port; }
  }
}
CONF
PATH="$PATH:/usr/sbin" nginx -e stderr -p "$d" -c "$d/nginx.conf" -g 'daemon off;' 2>/dev/null &
nginx_pid=$!
wait_port "$web_port"

kill -TERM "$nginx_pid" "$app_pid" "$redis"
wait "$nginx_pid" "$app_pid" "$redis" 2>/dev/null
rm -rf "$d"
