# Sourced by scripts that fetch Debian packages for another release or architecture (vmlinux.h for
# arm64, the kernel matrix): apt with its own configuration, sources, lists, cache, log and (empty)
# dpkg status under one directory. APT_CONFIG replaces /etc/apt/apt.conf and Dir::Etc::* keep
# /etc/apt/{apt.conf.d,sources.list*,preferences*} out, so no system apt source, list, cache or dpkg
# architecture is touched; only Debian's archive keyring is read from the system. Packages are
# checked against the signed archive index by apt as usual.

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DEBIAN_KEYRING=${DEBIAN_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}

# private_apt_update DIR ARCH RELEASE...: sets up apt in DIR for ARCH with the main component of each
# RELEASE, RELEASE-updates and RELEASE-security, exports APT_CONFIG and runs apt-get update. Returns
# non-zero (with the reason on stderr) when an index cannot be fetched: apt-get update exits 0 on some
# fetch failures, and an index we cannot see must not pass silently.
private_apt_update() {
	local a=$1 arch=$2
	shift 2
	local releases=("$@") suites="" security="" r
	for r in "${releases[@]}"; do
		suites+="$r $r-updates "
		security+="$r-security "
	done
	if [[ ! -r "$DEBIAN_KEYRING" ]]; then
		echo "$DEBIAN_KEYRING missing (apt-get install debian-archive-keyring)" >&2
		return 1
	fi
	mkdir -p "$a/etc/apt.conf.d" "$a/etc/preferences.d" "$a/etc/sources.list.d" \
		"$a/state/lists/partial" "$a/cache/archives/partial" "$a/log"
	: >"$a/status"
	cat >"$a/etc/sources.list.d/debian.sources" <<EOS
Types: deb
URIs: $DEBIAN_MIRROR
Suites: ${suites% }
Components: main
Architectures: $arch
Signed-By: $DEBIAN_KEYRING

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: ${security% }
Components: main
Architectures: $arch
Signed-By: $DEBIAN_KEYRING
EOS
	cat >"$a/apt.conf" <<EOS
Dir "/";
Dir::Etc "$a/etc";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "$a/etc/apt.conf.d";
Dir::Etc::sourcelist "/dev/null";
Dir::Etc::sourceparts "$a/etc/sources.list.d";
Dir::Etc::preferences "/dev/null";
Dir::Etc::preferencesparts "$a/etc/preferences.d";
Dir::State "$a/state";
Dir::State::status "$a/status";
Dir::Cache "$a/cache";
Dir::Log "$a/log";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled "false";
Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled "false";
EOS
	export APT_CONFIG=$a/apt.conf
	if ! apt-get -q update >"$a/update.log" 2>&1; then
		tail -5 "$a/update.log" >&2
		return 1
	fi
	if grep -E '^(W|E): ' "$a/update.log" >&2; then
		return 1
	fi
}

# apt_field PKG=VER FIELD: one field of a package's index entry (e.g. SHA256, Filename).
apt_field() {
	apt-cache show "$1" 2>/dev/null | awk -v f="$2:" '$1 == f { print $2; exit }'
}
