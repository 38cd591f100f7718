#!/usr/bin/env bash
# Runs nginx in front of benzer-app (see nginx.conf.in): as any user, with
# its configuration, logs and temporary files in DIR.
#
#   bash app/deploy/nginx.sh LISTEN APP_PORT DIR [nginx options]
#
# LISTEN is nginx's listen parameter (8080, 0.0.0.0:80, ...), APP_PORT the
# port of benzer-app on 127.0.0.1 (start it with --behind-proxy). nginx
# runs in the foreground (-g 'daemon off;'); extra options go to nginx.
# Debian package: nginx.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
listen=$1 app_port=$2 dir=$3
shift 3
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx.sh: nginx is not installed (apt-get install nginx)" >&2; exit 1; }
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
sed -e "s|@LISTEN@|$listen|g" -e "s|@APP_PORT@|$app_port|g" -e "s|@DIR@|$dir|g" \
    "$here/nginx.conf.in" >"$dir/nginx.conf"
exec "$nginx" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' "$@"
