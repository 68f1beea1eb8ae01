# shellcheck shell=sh
# Stand-ins for what OpenWrt's rc.common gives a procd init script, for
# packaging/tests/openwrt: UCI values come from variables named as
# /lib/functions.sh stores them (CONFIG_<section>_<option>, a list as
# CONFIG_<section>_<option>_ITEM<n> and _LENGTH), and each procd call is
# written to $PROCD_LOG, one line each, arguments separated by tabs.
# (Variables set through eval are invisible to shellcheck.)
# shellcheck disable=SC2154

config_load() { [ "$1" = stacksense ] || echo "config_load $1" >>"$PROCD_LOG"; }

config_foreach() {
	for _section in $CONFIG_SECTIONS; do
		eval "_type=\${CONFIG_${_section}_TYPE:-}"
		[ "$_type" = "$2" ] && "$1" "$_section"
	done
	return 0
}

config_get() {
	eval "$1=\${CONFIG_${2}_${3}-\${4:-}}"
}

config_get_bool() {
	config_get _bool "$2" "$3" "${4:-0}"
	case "$_bool" in
	1 | on | true | yes | enabled) eval "$1=1" ;;
	*) eval "$1=0" ;;
	esac
}

config_list_foreach() {
	eval "_length=\${CONFIG_${1}_${2}_LENGTH:-0}"
	_n=1
	while [ "$_n" -le "$_length" ]; do
		eval "_item=\${CONFIG_${1}_${2}_ITEM${_n}}"
		"$3" "$_item"
		_n=$((_n + 1))
	done
}

procd_record() {
	_line=$1
	shift
	for _arg in "$@"; do _line="$_line	$_arg"; done
	printf '%s\n' "$_line" >>"$PROCD_LOG"
}
procd_open_instance() { procd_record open_instance "$@"; }
procd_close_instance() { procd_record close_instance; }
procd_set_param() { procd_record set_param "$@"; }
procd_append_param() { procd_record append_param "$@"; }
procd_add_reload_trigger() { procd_record reload_trigger "$@"; }
