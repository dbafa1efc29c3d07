#!/usr/bin/env bash
# Prepare a Debian host for port25's build and tests: install the packages
# they need and make sure Open vSwitch (ovsdb-server and ovs-vswitchd) is
# running. Rust itself comes from rustup (README "Set-up"), not from here.
#
# Idempotent: packages are installed only when `dpkg -s` says they are
# missing (and `apt-get update` runs only then); OVS is started only when it
# does not answer. Safe to run on every test run and in CI.
#
# The kernel may have no openvswitch module: the tests use the userspace
# datapath (datapath_type=netdev), which needs only ovs-vswitchd itself.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        exec sudo -n -E bash "$0" "$@"
    fi
    echo "setup-host.sh: must run as root (and sudo is not available)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# The build: gcc is rustc's linker and compiles ring's C code; g++ compiles
# libFuzzer (libfuzzer-sys) for scripts/fuzz-smoke.sh; libc6-dev has the C
# library's start files and headers (only a Recommends of gcc, and we
# install without recommends).
# The e2e harness: OVS (switch + ovs-vsctl/ofctl/appctl/ovs-pki), mininet
# (and Debian's python3 that carries it), ethtool (checksum offload off),
# ping/nc for manual debugging, tcpdump for debugging captures, iproute2 for
# namespaces and links.
PACKAGES=(
    gcc
    g++
    libc6-dev
    openvswitch-switch
    mininet
    python3
    ethtool
    iputils-ping
    netcat-openbsd
    iproute2
    tcpdump
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg -s "$p" >/dev/null 2>&1; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup-host: installing ${missing[*]}"
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "setup-host: packages already installed"
fi

OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
RUNDIR=/var/run/openvswitch

vswitchd_alive() {
    ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1
}

if ovs-vsctl -t 5 show >/dev/null 2>&1 && vswitchd_alive; then
    echo "setup-host: Open vSwitch already running"
else
    echo "setup-host: starting Open vSwitch"
    # On a kernel without module support ovs-ctl skips modprobe; on one with
    # modules but no openvswitch.ko it fails before starting ovs-vswitchd,
    # so fall back to starting the daemons directly below.
    "$OVS_CTL" start --system-id=random || echo "setup-host: ovs-ctl start failed; trying direct start" >&2
    if ! ovs-vsctl -t 5 show >/dev/null 2>&1; then
        "$OVS_CTL" start --no-ovs-vswitchd --system-id=random || true
    fi
    if ovs-vsctl -t 5 show >/dev/null 2>&1 && ! vswitchd_alive; then
        mkdir -p "$RUNDIR" /var/log/openvswitch
        ovs-vswitchd "unix:$RUNDIR/db.sock" -vconsole:emer -vsyslog:err -vfile:info \
            --no-chdir --log-file=/var/log/openvswitch/ovs-vswitchd.log \
            --pidfile="$RUNDIR/ovs-vswitchd.pid" --detach --monitor
    fi
fi

if ! ovs-vsctl -t 5 show >/dev/null 2>&1; then
    echo "setup-host: ERROR: 'ovs-vsctl show' fails: ovsdb-server is not reachable at $RUNDIR/db.sock" >&2
    echo "setup-host: see /var/log/openvswitch/ovsdb-server.log" >&2
    exit 1
fi
if ! vswitchd_alive; then
    echo "setup-host: ERROR: ovs-vswitchd is not answering 'ovs-appctl version'" >&2
    echo "setup-host: see /var/log/openvswitch/ovs-vswitchd.log" >&2
    exit 1
fi
if ! /usr/bin/python3 -c 'import mininet.net' >/dev/null 2>&1; then
    echo "setup-host: ERROR: /usr/bin/python3 cannot import mininet" >&2
    exit 1
fi
echo "setup-host: ok ($(ovs-vsctl --version | head -n1))"
