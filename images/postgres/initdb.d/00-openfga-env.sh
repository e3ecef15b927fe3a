# shellcheck shell=sh
# Sourced (not executed) before the SQL that follows, by openfga-postgres.sh or
# by the official image's /docker-entrypoint-initdb.d runner, so the variables
# it exports reach psql (10-openfga.sql reads them with \getenv).
#
# Sets the defaults, reads the *_FILE variants of the passwords and refuses bad
# input with a message naming the variable, before anything is created. The
# same rules live in ci/src/openfga_release/recipes/postgres.py (plan-time checks);
# tests/test_postgres_validation.py proves the two agree.
#
#   POSTGRES_OPENFGA_DB        database              (default openfga)
#   POSTGRES_OWNER_ROLE        NOLOGIN owner         (default openfga_owner)
#   POSTGRES_MIGRATOR_ROLE     `openfga migrate`     (default openfga_migrator)
#   POSTGRES_APP_ROLE          `openfga run`         (default openfga_app)
#   POSTGRES_READONLY_ROLE     backups, reporting    (default openfga_readonly)
#   POSTGRES_MIGRATOR_PASSWORD, POSTGRES_APP_PASSWORD, POSTGRES_READONLY_PASSWORD
#     or the same names with _FILE: a file holding the password.

openfga_die() {
	printf 'openfga init: error: %s\n' "$*" >&2
	exit 1
}

# openfga_file_env VAR: VAR, or the contents of the file named by VAR_FILE
# (trailing newlines dropped), exported as VAR.
openfga_file_env() {
	eval "_ofga_val=\${$1:-}"
	eval "_ofga_file=\${$1_FILE:-}"
	if [ -n "$_ofga_val" ] && [ -n "$_ofga_file" ]; then
		openfga_die "both $1 and $1_FILE are set: set only one of them"
	fi
	if [ -n "$_ofga_file" ]; then
		[ -r "$_ofga_file" ] || openfga_die "$1_FILE names $_ofga_file, which is not a readable file"
		_ofga_val=$(cat -- "$_ofga_file") || openfga_die "could not read $1_FILE ($_ofga_file)"
	fi
	eval "$1=\$_ofga_val"
	export "$1"
	unset "$1_FILE" _ofga_val _ofga_file
}

_OFGA_LOWER=abcdefghijklmnopqrstuvwxyz
_OFGA_RESERVED=' postgres public none all current_user session_user current_role template0 template1 replication sameuser samerole '

# openfga_check_name VAR: a plain lowercase SQL identifier that is safe unquoted
# in URLs, pg_hba.conf and logs.
openfga_check_name() {
	eval "_ofga_name=\${$1:-}"
	_ofga_fix="use lowercase letters, digits and underscores, starting with a letter or underscore, at most 63 characters (for example openfga_app)"
	case "$_ofga_name" in
	'') openfga_die "$1 is empty: $_ofga_fix" ;;
	[!${_OFGA_LOWER}_]* | *[!${_OFGA_LOWER}0123456789_]*)
		openfga_die "$1 ('$_ofga_name') is not a valid name: $_ofga_fix" ;;
	pg_*) openfga_die "$1 ('$_ofga_name') starts with pg_, which PostgreSQL reserves: choose another name" ;;
	esac
	if [ "$(printf '%s' "$_ofga_name" | wc -c)" -gt 63 ]; then
		openfga_die "$1 ('$_ofga_name') is longer than 63 characters, PostgreSQL would truncate it: $_ofga_fix"
	fi
	case "$_OFGA_RESERVED" in
	*" $_ofga_name "*) openfga_die "$1 ('$_ofga_name') is a reserved name: choose another name" ;;
	esac
}

# openfga_check_password VAR ROLE: refuses empty, short or trivially weak
# passwords. Messages name the variable, never the value.
openfga_check_password() {
	eval "_ofga_pw=\${$1:-}"
	_ofga_fix="generate one with: openssl rand -base64 24"
	[ -n "$_ofga_pw" ] || openfga_die "$1 is empty (and $1_FILE is not set): the $2 role needs a password; $_ofga_fix"
	case "$_ofga_pw" in
	*[[:cntrl:]]*) openfga_die "$1 contains control characters (newline, tab...): $_ofga_fix" ;;
	esac
	_ofga_len=$(printf '%s' "$_ofga_pw" | wc -c)
	if [ "$_ofga_len" -lt 12 ]; then
		openfga_die "$1 is too weak: $_ofga_len characters, at least 12 are required; $_ofga_fix"
	fi
	if [ "$_ofga_len" -gt 1024 ]; then
		openfga_die "$1 is $_ofga_len bytes long; at most 1024 are allowed (a longer value is usually the wrong file or variable); $_ofga_fix"
	fi
	_ofga_distinct=$(printf '%s' "$_ofga_pw" | od -An -v -tx1 | tr -s ' \n' '\n\n' | grep -v '^$' | sort -u | wc -l)
	if [ "$_ofga_distinct" -lt 6 ]; then
		openfga_die "$1 is too weak: only $_ofga_distinct different characters, at least 6 are required; $_ofga_fix"
	fi
	_ofga_lower=$(printf '%s' "$_ofga_pw" | LC_ALL=C tr 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' "$_OFGA_LOWER")
	for _ofga_word in "$2" "$POSTGRES_OPENFGA_DB"; do
		case "$_ofga_lower" in
		*"$_ofga_word"*) openfga_die "$1 is too weak: it contains the name '$_ofga_word'; $_ofga_fix" ;;
		esac
	done
	unset _ofga_pw _ofga_lower
}

openfga_env() {
	: "${POSTGRES_OPENFGA_DB:=openfga}"
	: "${POSTGRES_OWNER_ROLE:=openfga_owner}"
	: "${POSTGRES_MIGRATOR_ROLE:=openfga_migrator}"
	: "${POSTGRES_APP_ROLE:=openfga_app}"
	: "${POSTGRES_READONLY_ROLE:=openfga_readonly}"
	export POSTGRES_OPENFGA_DB POSTGRES_OWNER_ROLE POSTGRES_MIGRATOR_ROLE POSTGRES_APP_ROLE POSTGRES_READONLY_ROLE
	for _ofga_var in POSTGRES_OPENFGA_DB POSTGRES_OWNER_ROLE POSTGRES_MIGRATOR_ROLE POSTGRES_APP_ROLE POSTGRES_READONLY_ROLE; do
		openfga_check_name "$_ofga_var"
	done
	_ofga_seen=' '
	for _ofga_name in "$POSTGRES_OPENFGA_DB" "$POSTGRES_OWNER_ROLE" "$POSTGRES_MIGRATOR_ROLE" "$POSTGRES_APP_ROLE" "$POSTGRES_READONLY_ROLE"; do
		case "$_ofga_seen" in
		*" $_ofga_name "*) openfga_die "the name '$_ofga_name' is used twice: the database and the four roles need distinct names" ;;
		esac
		_ofga_seen="$_ofga_seen$_ofga_name "
	done
	openfga_file_env POSTGRES_MIGRATOR_PASSWORD
	openfga_file_env POSTGRES_APP_PASSWORD
	openfga_file_env POSTGRES_READONLY_PASSWORD
	openfga_check_password POSTGRES_MIGRATOR_PASSWORD "$POSTGRES_MIGRATOR_ROLE"
	openfga_check_password POSTGRES_APP_PASSWORD "$POSTGRES_APP_ROLE"
	openfga_check_password POSTGRES_READONLY_PASSWORD "$POSTGRES_READONLY_ROLE"
	# One password per role: a shared one would let the app log in as the migrator.
	if [ "$POSTGRES_MIGRATOR_PASSWORD" = "$POSTGRES_APP_PASSWORD" ] ||
		[ "$POSTGRES_MIGRATOR_PASSWORD" = "$POSTGRES_READONLY_PASSWORD" ] ||
		[ "$POSTGRES_APP_PASSWORD" = "$POSTGRES_READONLY_PASSWORD" ]; then
		openfga_die "two of POSTGRES_MIGRATOR_PASSWORD, POSTGRES_APP_PASSWORD and POSTGRES_READONLY_PASSWORD are equal: give each role its own password"
	fi
	unset _ofga_var _ofga_seen _ofga_name _ofga_word _ofga_len _ofga_distinct _ofga_fix
}

openfga_env
