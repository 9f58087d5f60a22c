/**
 * Where container runtimes unpack image layers (each an overlayfs lower directory, a root of its
 * own), as globs: containerd (and CRI), Docker, Podman/CRI-O (containers/storage) and k3s.
 */
export const DEFAULT_IMAGE_LAYERS: readonly string[] = [
  '/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs',
  '/var/lib/docker/overlay2/*/diff',
  '/var/lib/containers/storage/overlay/*/diff',
  '/var/lib/rancher/k3s/agent/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs',
];
