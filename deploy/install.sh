#!/bin/sh
# Install sorf sense on a sensor box, or again over an earlier install (each step is skipped or redone
# harmlessly): the sorf system user, a venv in /opt/sorf with this checkout installed, /etc/sorf with
# an example of sense.env, /var/lib/sorf, and the systemd unit, enabled but not started.
#
#   deploy/install.sh [--root DIR] [--no-systemctl] [--python PYTHON]
#
# --root DIR (or DESTDIR=DIR) installs under DIR instead of /, as into an image; --no-systemctl leaves
# the unit unenabled. Needs python3 (3.11+) with venv, and pip's access to PyPI or a mirror.
set -eu

usage() {
    sed -n 's/^#   //p' "$0" >&2
    exit 2
}

root=${DESTDIR:-}
systemctl=yes
python=python3
while [ $# -gt 0 ]; do
    case $1 in
        --root) [ $# -ge 2 ] || usage; root=$2; shift 2 ;;
        --no-systemctl) systemctl=no; shift ;;
        --python) [ $# -ge 2 ] || usage; python=$2; shift 2 ;;
        *) usage ;;
    esac
done
root=${root%/}
src=$(cd "$(dirname "$0")/.." && pwd)
deploy=$src/deploy

say() { printf 'install.sh: %s\n' "$*"; }

# the user: systemd-sysusers creates it once and leaves it be after (its file stays for the next boot)
install -d -m 0755 "$root/etc/sorf"
install -D -m 0644 "$deploy/sorf.sysusers" "$root/usr/lib/sysusers.d/sorf.conf"
if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers ${root:+--root="$root"} sorf.conf
elif [ -z "$root" ] && ! getent passwd sorf >/dev/null; then
    useradd --system --user-group --home-dir /var/lib/sorf --shell /usr/sbin/nologin sorf
fi
owner=$(awk -F: '$1 == "sorf" { print $3 ":" $4 }' "$root/etc/passwd")
[ -n "$owner" ] || { say "no sorf user in $root/etc/passwd"; exit 1; }
say "user sorf ($owner)"

# the program: a venv of its own, the checkout installed into it (a newer checkout upgrades it)
install -d -m 0755 "$root/opt/sorf"
[ -x "$root/opt/sorf/venv/bin/python" ] || "$python" -m venv "$root/opt/sorf/venv"
"$root/opt/sorf/venv/bin/pip" install --quiet --upgrade "$src"  # a local folder is always rebuilt and reinstalled
install -m 0644 "$deploy/README.md" "$root/opt/sorf/README.md"
say "sorf in $root/opt/sorf/venv"

# settings: the example beside an existing sense.env, never over it
install -m 0644 "$deploy/sense.env.example" "$root/etc/sorf/sense.env.example"
if [ ! -e "$root/etc/sorf/sense.env" ]; then
    install -m 0600 "$deploy/sense.env.example" "$root/etc/sorf/sense.env"
    say "wrote $root/etc/sorf/sense.env: set SORF_IFACE before starting"
fi

# data: the unit's StateDirectory, made now so its size can be planned (systemd keeps its owner right)
install -d -m 0750 "$root/var/lib/sorf"
chown "$owner" "$root/var/lib/sorf"

install -D -m 0644 "$deploy/sorf-sense.service" "$root/etc/systemd/system/sorf-sense.service"
install -m 0644 "$deploy/sorf-nic@.service" "$root/etc/systemd/system/sorf-nic@.service"  # enabled per NIC
if [ "$systemctl" = yes ]; then
    if [ -n "$root" ]; then
        systemctl --root="$root" enable sorf-sense.service
    else
        systemctl daemon-reload
        systemctl enable sorf-sense.service
    fi
    say "enabled sorf-sense.service; start it with: systemctl start sorf-sense"
fi
