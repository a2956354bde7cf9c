#!/usr/bin/env bash
# The sandbox suite on a pure cgroup v2 host: boots Debian 12's kernel in QEMU (KVM, else
# TCG) over a read-only 9p view of this machine, mounts only cgroup2 at /sys/fs/cgroup and
# runs every sandbox_test mode plus `airlock worker check` there, in the cgroup layouts a
# worker meets (docs/lib/sandbox.md "cgroup v2").
#
# Usage: cgroup2-vm.sh BUILD_DIR. Exit 0 = every guest check passed, 77 = skipped (no
# qemu, apt or kernel package), 1 = a guest check failed or the
# guest never finished. Nothing is installed: the kernel and busybox .debs are unpacked
# into BUILD_DIR/cgroup2-vm. In the guest this script runs again with --guest, after
# switch_root into the host's tree.
set -u

skip() {
	echo "skip: sandbox-cgroup2-vm: $*"
	echo "1..0 # SKIP $*"
	exit 77
}

# ------------------------------------------------------------------------- guest side
# Runs in the guest, chrooted into the host's read-only root; RUN is the writable share.
# Each check appends "<name> <exit code>" to RUN/summary and its output to RUN/<name>.log.
guest_check() {
	local name=$1 rc start=$SECONDS
	shift
	# AIRLOCK_VM_ONLY=<extended regex>: only the checks whose names match (development)
	if [ -n "${AIRLOCK_VM_ONLY:-}" ] && ! [[ $name =~ $AIRLOCK_VM_ONLY ]]; then
		return 0
	fi
	"$@" >"$RUN/$name.log" 2>&1
	rc=$?
	echo "$name $rc $((SECONDS - start))" >>"$RUN/summary"
}

# Runs the command in a fresh child cgroup of CG (the shell itself stays where it is), as
# systemd starts a Delegate=yes service: the controllers are enabled in CG's parent only.
in_cgroup() {
	local cg=$1
	shift
	mkdir -p "$cg" || return 99
	# shellcheck disable=SC2016
	sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# Makes DIR a group as systemd delegates it (Delegate=yes): its trusted.delegate xattr.
delegate() {
	mkdir -p "$1" &&
		python3 -c 'import os, sys; os.setxattr(sys.argv[1], "trusted.delegate", b"1")' "$1"
}

# `airlock worker check` only looks: the group keeps its processes and controllers.
check_untouched() {
	local sub kids
	sub=$(cat "$1/cgroup.subtree_control")
	kids=$(find "$1" -mindepth 1 -type d)
	echo "subtree_control='$sub' children='$kids'"
	[ -z "$sub" ] && [ -z "$kids" ]
}

# Fails when a worker's leaf holds another one (each restart would nest one level deeper).
not_nested() {
	local n
	n=$(find "$1" -type d -path '*/airlock-worker/airlock-worker')
	find "$1" -type d
	[ -z "$n" ]
}

# Fails when anything named airlock-* is left below DIR (sandboxes must not outlive a run).
no_leftovers() {
	local left
	left=$(find "$1" -mindepth 1 -type d -name 'airlock-*' ! -name 'airlock-worker' \
		2>/dev/null)
	if [ -n "$left" ]; then
		echo "left behind:"
		# shellcheck disable=SC2086
		find $left -maxdepth 2 -type d
		return 1
	fi
	echo "nothing left below $1"
}

# `airlock worker check` with a server that cannot answer: the sandbox lines are what we
# check (the unreachable server makes it exit 1 regardless). $1 = the cgroups line expected.
worker_check() {
	local want=$1 out
	out=$("$BUILD/src/airlock" worker check --environment-id env_vm --environment-key k \
		--base-url http://127.0.0.1:9 2>&1)
	echo "$out"
	echo "$out" | grep -qxF "$want" || {
		echo "MISSING: $want"
		return 1
	}
	if [ "${want#ok }" != "$want" ] && echo "$out" | grep -q '^fail '; then
		echo "UNEXPECTED fail line"
		return 1
	fi
	return 0
}

guest_main() {
	export BUILD=$1 RUN=$2
	local cg=/sys/fs/cgroup mode t=$BUILD/tests/sandbox
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export HOME=/root
	cd /tmp || return
	uname -r >"$RUN/kernel"
	# Only the unified hierarchy: every controller is on v2, as on a fresh Debian 12.
	mount -t cgroup2 -o nsdelegate none $cg || {
		echo "mount-cgroup2 1" >>"$RUN/summary"
		return
	}
	ip link set lo up 2>/dev/null
	grep cgroup /proc/mounts >"$RUN/mounts"

	# Pass 1: a worker started by root in the root cgroup (no init system).
	guest_check worker-check-root worker_check "ok cgroups: cgroup v2 (delegated)"
	for mode in escapes escapes-warm limits lifecycle spares monitor unpriv; do
		guest_check "root-$mode" "$t/sandbox_test" "$mode" "$t/sbtry"
	done
	guest_check root-leftovers no_leftovers $cg

	# Pass 2: a systemd service with Delegate=yes (a cgroup of its own below a slice that
	# enabled the controllers for it): the worker must first move itself into a leaf.
	echo "+memory +pids +cpu" >$cg/cgroup.subtree_control
	mkdir -p $cg/system.slice
	echo "+memory +pids +cpu" >$cg/system.slice/cgroup.subtree_control
	delegate $cg/system.slice/check.service
	guest_check worker-check-service in_cgroup $cg/system.slice/check.service \
		"$0" --guest-fn worker_check "ok cgroups: cgroup v2 (delegated)"
	guest_check worker-check-no-side-effects check_untouched $cg/system.slice/check.service
	for mode in limits lifecycle spares monitor; do
		delegate "$cg/system.slice/sbtest-$mode.service"
		guest_check "service-$mode" in_cgroup "$cg/system.slice/sbtest-$mode.service" \
			"$t/sandbox_test" "$mode" "$t/sbtry"
	done
	# The same unit without Delegate=yes: usable, but systemd owns its controllers.
	guest_check worker-check-unit-undelegated in_cgroup $cg/system.slice/plain.service \
		"$0" --guest-fn worker_check \
		"warn cgroups: cgroup v2 in a systemd unit without Delegate=yes: systemd may take the controllers back (set Delegate=yes in the worker's unit)"
	# ... and a worker started there anyway works and says so in its log.
	guest_check service-undelegated-spares in_cgroup $cg/system.slice/plain-run.service \
		"$t/sandbox_test" spares "$t/sbtry"
	guest_check service-undelegated-logged grep -F "systemd unit without Delegate=yes" \
		"$RUN/service-undelegated-spares.log"
	# A worker restarted in place (a wrapper loop in the unit): the second run starts in
	# the airlock-worker leaf of the first and must reuse the unit, not nest below it.
	delegate $cg/system.slice/restart.service
	guest_check service-restart in_cgroup $cg/system.slice/restart.service sh -c \
		"'$t/sandbox_test' lifecycle '$t/sbtry' && '$t/sandbox_test' spares '$t/sbtry'"
	guest_check service-restart-flat not_nested $cg/system.slice/restart.service
	guest_check service-leftovers no_leftovers $cg/system.slice

	# Pass 3: a unit given memory and pids but not cpu (Delegate=memory pids): cpu.max
	# goes, the limits that matter stay.
	mkdir -p $cg/nocpu.slice
	echo "+memory +pids" >$cg/nocpu.slice/cgroup.subtree_control
	for mode in limits spares; do
		delegate "$cg/nocpu.slice/sbtest-$mode.service"
		guest_check "nocpu-$mode" in_cgroup "$cg/nocpu.slice/sbtest-$mode.service" \
			"$t/sandbox_test" "$mode" "$t/sbtry"
	done
	guest_check nocpu-leftovers no_leftovers $cg/nocpu.slice

	# Pass 4: a container (its own cgroup namespace, cgroupfs mounted rw inside; its
	# init holds the namespace root, as docker run --cgroupns=private does).
	mkdir -p $cg/machine.slice
	echo "+memory +pids +cpu" >$cg/machine.slice/cgroup.subtree_control
	for mode in lifecycle spares; do
		guest_check "container-$mode" in_cgroup "$cg/machine.slice/container-$mode.scope" \
			unshare --cgroup --mount --propagation private sh -c \
			"umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup &&
			exec '$t/sandbox_test' $mode '$t/sbtry'"
	done
	guest_check container-leftovers no_leftovers $cg/machine.slice

	# Pass 5: a rootless worker in a group delegated to its uid (systemd --user with
	# Delegate=yes chowns the group and its cgroup.procs/subtree_control/threads).
	mkdir -p $cg/user.slice/airlock.scope
	echo "+memory +pids +cpu" >$cg/user.slice/cgroup.subtree_control
	chown 65534 $cg/user.slice/airlock.scope $cg/user.slice/airlock.scope/cgroup.procs \
		$cg/user.slice/airlock.scope/cgroup.subtree_control \
		$cg/user.slice/airlock.scope/cgroup.threads
	guest_check rootless-unpriv in_cgroup $cg/user.slice/airlock.scope \
		"$t/sandbox_test" unpriv "$t/sbtry"
	guest_check rootless-used-cgroups grep -xF "# unprivileged cgroups: v2" \
		"$RUN/rootless-unpriv.log"
	guest_check rootless-leftovers no_leftovers $cg/user.slice

	# Pass 6: a cgroup whose parent did not enable memory and pids: preflight says why.
	mkdir -p $cg/plain
	guest_check worker-check-undelegated in_cgroup $cg/plain/child \
		"$0" --guest-fn worker_check \
		"fail cgroups: cgroup v2: memory and pids controllers not delegated to this cgroup; systemd: Delegate=yes; containers: cgroupns + rw cgroupfs (or run with degraded no-cgroups: rlimits only)"
	echo finished >"$RUN/finished"
}

if [ "${1:-}" = "--guest" ]; then
	guest_main "$2" "$3"
	exit 0
fi
if [ "${1:-}" = "--guest-fn" ]; then
	shift
	"$@"
	exit $?
fi

# -------------------------------------------------------------------------- host side
BUILD=$(realpath "${1:?usage: cgroup2-vm.sh BUILD_DIR}")
SCRIPT=$(realpath "$0")
CACHE=$BUILD/cgroup2-vm
RUN=$CACHE/run
# The guest mounts a fresh tmpfs on /tmp; a checkout or build dir under /tmp (a CI clone)
# is bound back into it from the host's /tmp.
TMP_BINDS=()
for d in "${SCRIPT%/tests/sandbox/*}" "$BUILD"; do
	case "$d" in /tmp/*) TMP_BINDS+=("$d") ;; esac
done
if ! [ -x "$BUILD/tests/sandbox/sandbox_test" ] || ! [ -x "$BUILD/src/airlock" ]; then
	skip "no sandbox_test or airlock in $BUILD"
fi
# KVM needs hardware virtualisation (kvm_intel/kvm_amd): a /dev/kvm from another backend
# (e.g. kvm_pvm, which only runs PVM-built guest kernels) hangs Debian's stock kernel at
# boot. Without it QEMU's TCG emulates the CPU: slower, same kernel and same checks.
ACCEL=${AIRLOCK_VM_ACCEL:-}
if [ -z "$ACCEL" ]; then
	ACCEL=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ] &&
		{ [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
		ACCEL=kvm
	fi
fi
case $ACCEL in
kvm) QACCEL=(-enable-kvm -cpu host) ;;
tcg) QACCEL=(-accel "tcg,thread=multi" -cpu max) ;;
*) skip "AIRLOCK_VM_ACCEL must be kvm or tcg" ;;
esac
command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
command -v apt-get >/dev/null || skip "no apt-get to fetch the Debian kernel"
mkdir -p "$CACHE/deb" || exit 1

# The kernel Debian 12 boots (linux-image-amd64's dependency) and a static busybox,
# unpacked, never installed. A cached unpack is reused.
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
[ -n "$KPKG" ] || skip "apt-cache does not know linux-image-amd64"
KVER=${KPKG#linux-image-}
KDIR=$CACHE/$KPKG

# The virtio-pci and 9p modules, dependencies first (from each module's own depends=
# field: no modinfo/depmod needed), copied from the unpacked package ($KTMP) to $KDIR/mods.
MODS=()
add_mod() {
	local name=$1 f deps d
	case " ${MODS[*]} " in *" $name "*) return 0 ;; esac
	f=$(find "$KTMP/lib/modules" -name "$name.ko" -print -quit)
	[ -n "$f" ] || return 0 # built in
	deps=$(grep -a -o 'depends=[a-z0-9_,-]*' "$f" | head -n1 | cut -d= -f2)
	for d in ${deps//,/ }; do
		add_mod "$d"
	done
	MODS+=("$name")
	cp "$f" "$KDIR/mods/"
}

# Only the kernel image and those modules stay (the package unpacks to 400 MB).
if [ ! -f "$KDIR/mods.order" ]; then
	(cd "$CACHE/deb" && apt-get download -q "$KPKG" busybox-static >/dev/null 2>&1) ||
		skip "cannot download $KPKG / busybox-static"
	KTMP=$KDIR.tmp
	rm -rf "$KTMP" "$KDIR" "$CACHE/busybox"
	mkdir -p "$KDIR/mods" || exit 1
	dpkg-deb -x "$CACHE"/deb/"$KPKG"_*.deb "$KTMP" &&
		dpkg-deb -x "$CACHE"/deb/busybox-static_*.deb "$CACHE/busybox" &&
		cp "$KTMP/boot/vmlinuz-$KVER" "$KDIR/vmlinuz" || exit 1
	for m in virtio_pci 9pnet_virtio 9p; do
		add_mod $m
	done
	echo "${MODS[*]}" >"$KDIR/mods.order"
	rm -rf "$KTMP" "$CACHE"/deb/*.deb
fi
read -r -a MODS <"$KDIR/mods.order"
BUSYBOX=$CACHE/busybox/bin/busybox
[ -x "$BUSYBOX" ] || { echo "no busybox in $CACHE/busybox" >&2; exit 1; }

# The initramfs: busybox, the modules and an init that mounts the shares.
INITRD=$CACHE/initrd
rm -rf "$INITRD" && mkdir -p "$INITRD/bin" "$INITRD/mods" || exit 1
cp "$BUSYBOX" "$INITRD/bin/busybox" && cp "$KDIR"/mods/*.ko "$INITRD/mods/" || exit 1

cat >"$INITRD/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /host /out
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${MODS[*]}; do insmod /mods/\$m.ko || echo "insmod \$m failed"; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host &&
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results /out || {
	echo "cgroup2-vm: 9p mounts failed"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /host/dev/pts
mount -t tmpfs -o mode=1777 shm /host/dev/shm
mkdir -p /hosttmp && mount --bind /host/tmp /hosttmp
mount -t tmpfs -o mode=1777 tmp /host/tmp
for d in ${TMP_BINDS[*]}; do
	mkdir -p /host\$d && mount --bind /hosttmp\${d#/tmp} /host\$d || echo "cgroup2-vm: bind \$d failed"
done
mount -t tmpfs -o mode=0755 run /host/run
mount --bind /out /host$RUN
cp /bin/busybox /host/run/busybox
# switch_root, not chroot: the kernel refuses user namespaces to a chrooted process.
export AIRLOCK_VM_ONLY=$(printf %q "${AIRLOCK_VM_ONLY:-}")
exec switch_root /host /run/busybox sh -c \
	"cd /tmp; /bin/bash $SCRIPT --guest $BUILD $RUN; /run/busybox poweroff -f"
EOF
chmod 0755 "$INITRD/init"
(cd "$INITRD" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null) >"$CACHE/initrd.cpio" || exit 1

rm -rf "$RUN" && mkdir -p "$RUN" || exit 1
echo "# booting $KPKG with $ACCEL (initramfs: ${MODS[*]})"
start=$(date +%s)
timeout 400 qemu-system-x86_64 "${QACCEL[@]}" -m 2G -smp 2 -nographic -no-reboot \
	-kernel "$KDIR/vmlinuz" -initrd "$CACHE/initrd.cpio" \
	-append "console=ttyS0 quiet panic=-1 lsm=landlock,lockdown,yama,apparmor" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$RUN",mount_tag=results,security_model=none \
	</dev/null >"$CACHE/console.log" 2>&1
qrc=$?
echo "# guest ran $(($(date +%s) - start)) s (qemu exit $qrc), kernel $(cat "$RUN/kernel" 2>/dev/null)"

fail=0
n=0
passed=0
failed=0
skipped=0
while read -r name rc secs; do
	n=$((n + 1))
	echo "# ---- $name (exit $rc, ${secs:-?} s)"
	sed 's/^/#   /' "$RUN/$name.log" 2>/dev/null | tail -n 400
	# the guest's "skip: <check>: <reason>" lines (tests/README.md), for tests/run.sh
	sed -n "s/^skip: /skip: $name: /p" "$RUN/$name.log" 2>/dev/null
	k=$(grep -c '^skip: ' "$RUN/$name.log" 2>/dev/null)
	skipped=$((skipped + ${k:-0}))
	if [ "$rc" = 0 ]; then
		echo "ok $n - $name"
		passed=$((passed + 1))
	elif [ "$rc" = 77 ]; then
		echo "skip $n - $name: nothing applied in the guest"
		[ "${k:-0}" -gt 0 ] || skipped=$((skipped + 1))
	else
		echo "not ok $n - $name: exit $rc"
		failed=$((failed + 1))
		fail=1
	fi
done <"$RUN/summary" 2>/dev/null
if [ ! -f "$RUN/finished" ]; then
	echo "not ok $((n + 1)) - guest did not finish (qemu exit $qrc); console:"
	tail -n 60 "$CACHE/console.log" | sed 's/^/#   /'
	failed=$((failed + 1))
	fail=1
	n=$((n + 1))
fi
echo "1..$n"
# guest checks passed and failed, and skips (guest checks and the checks inside them)
echo "# $passed passed, $failed failed, $skipped skipped"
exit $fail
