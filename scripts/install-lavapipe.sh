#!/usr/bin/env bash
# Mesa's lavapipe (a Vulkan device on the CPU) new enough for Dawn, for the WebGPU tests of the
# shader-f16 kernels: SwiftShader has no shader-f16, and Debian 12's Mesa 22.3 lavapipe is refused by
# Dawn ("Vulkan shaderUniform*ArrayDynamicIndexing required"). Mesa 25 from bookworm-backports is
# accepted and offers shader-f16 and subgroups. Only its lavapipe library is unpacked, under
# $MIMIR_LAVAPIPE_DIR (default /opt/mimir-lavapipe), with an ICD file pointing at it: the system's
# Mesa is left as it is, and only tests that set VK_ICD_FILENAMES to that file use it.
set -euo pipefail
dir="${MIMIR_LAVAPIPE_DIR:-/opt/mimir-lavapipe}"
if [ -f "$dir/lvp_icd.json" ] && [ -f "$dir/libvulkan_lvp.so" ]; then exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
printf 'deb http://deb.debian.org/debian %s main\n' bookworm bookworm-backports >"$work/sources.list"
apt_opts=(-o APT::Sandbox::User=root -o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache")
apt-get "${apt_opts[@]}" update -qq
# Whatever Mesa bookworm-backports has now (25.0.7 when this was written); 25.0 or later is needed.
(cd "$work" && apt-get "${apt_opts[@]}" download -qq mesa-vulkan-drivers/bookworm-backports)
deb=$(ls "$work"/mesa-vulkan-drivers_*.deb)
version=$(dpkg-deb -f "$deb" Version)
dpkg --compare-versions "$version" ge 25.0 || {
  echo "install-lavapipe.sh: bookworm-backports has Mesa $version; Dawn needs 25.0 or later" >&2
  exit 1
}
# The libraries lavapipe links (libllvm15 for 25.0.7, libxcb-*, ...), from Debian 12 where missing
# (bookworm's, not backports', by apt's default priorities).
missing=()
for dep in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g'); do
  dpkg -s "$dep" >/dev/null 2>&1 || missing+=("$dep")
done
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get "${apt_opts[@]}" install -y -qq "${missing[@]}" >/dev/null
fi
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$dir"
cp "$work/root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so" "$dir/"
cat >"$dir/lvp_icd.json" <<EOF
{ "file_format_version": "1.0.0", "ICD": { "library_path": "$dir/libvulkan_lvp.so", "api_version": "1.4.305" } }
EOF
echo "$version" >"$dir/version"
echo "lavapipe (Mesa $version) in $dir"
