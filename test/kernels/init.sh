#!/bin/sh
# PID 1 of a kernel-matrix guest (test/kernels/run.ts boots it under QEMU with the host's userspace
# in an initramfs). Mounts what a host has, except tracefs: the guest program first checks how
# soload finds tracing under debugfs alone (/sys/kernel/debug/tracing, an automount of tracefs),
# then mounts tracefs itself. Results go to the second serial port (ttyS1); console noise to ttyS0.
export PATH=/usr/local/bin:/usr/bin:/usr/sbin HOME=/root LANG=C.UTF-8
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t tmpfs tmpfs /run
chmod 1777 /tmp
mount -t debugfs debugfs /sys/kernel/debug
ip link set lo up
echo "kmatrix: init up, kernel $(cat /proc/sys/kernel/osrelease)"
cd /work/main
node dist/test/kernels/guest.js /etc/soload-kmatrix.json
echo "kmatrix: guest program exited $?"
sync
echo o > /proc/sysrq-trigger
sleep 10
