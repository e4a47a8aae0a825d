# peers.sh - sourced by the bench scripts (bash) that start nginx or mosquitto: a free port, a
# wait for a process's ready line and the peers' configurations, written the same way for every
# script that measures them.

# A loopback TCP port that was free a moment ago (the kernel's choice).
bench_free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_wait_line FILE REGEX PID: true once FILE has a line matching REGEX (up to ~15 s),
# false when PID exits first or the line never comes.
bench_wait_line() {
    for _ in $(seq 300); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# bench_nginx_conf DIR PORT UPSTREAM: DIR/nginx.conf (and DIR/tmp) for one nginx worker in the
# foreground, its files under DIR, listening on 127.0.0.1:PORT and proxying every request with
# HTTP/1.1 keep-alive to the Unix socket UPSTREAM.  As root its worker runs as root (it reads
# the upstream socket in a private directory).
bench_nginx_conf() {
    local dir=$1 port=$2 upstream=$3 user_line=""
    mkdir -p "$dir/tmp"
    [ "$(id -u)" = 0 ] && user_line="user root;"
    cat >"$dir/nginx.conf" <<EOT
$user_line
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    upstream echo {
        server unix:$upstream;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 100000000;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOT
}

# bench_nginx_up PID PORT: true once nginx (PID) answers a POST on 127.0.0.1:PORT (up to
# ~5 s of tries), false when it exits or never answers.
bench_nginx_up() {
    for _ in $(seq 100); do
        curl -s -o /dev/null --max-time 2 -d '{}' "http://127.0.0.1:$2/bus/x/y/z" && return 0
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# bench_mosquitto_conf FILE PORT: a mosquitto listener on 127.0.0.1:PORT, anonymous, Nagle
# off (as the daemons' MQTT links), running as root when started as root.
bench_mosquitto_conf() {
    {
        echo "listener $2 127.0.0.1"
        echo "allow_anonymous true"
        echo "set_tcp_nodelay true"
        [ "$(id -u)" = 0 ] && echo "user root"
        true
    } >"$1"
}
