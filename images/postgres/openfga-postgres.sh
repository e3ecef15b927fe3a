#!/bin/sh
# openfga-postgres: start PostgreSQL for OpenFGA with this directory's config.
#
# The entrypoint of the Unikraft rootfs and the container image (installed as
# /usr/local/bin/openfga-postgres); the tests run this same script against
# Debian's PostgreSQL. Usage: openfga-postgres [postgres arguments...]
#
#  1. As root: creates PGDATA (a subdirectory of the volume) and the run
#     directory, installs the TLS key where PostgreSQL accepts it (owned by
#     postgres, mode 0600), then runs itself again as the postgres user.
#     PostgreSQL refuses to run as root; on a runtime where setuid does not
#     take effect this stops with a message instead of a crash loop.
#  2. First boot: checks the environment (names, passwords) before anything
#     is created, runs initdb, starts a socket-only server, runs
#     $POSTGRES_INITDB_DIR in order like the official image's
#     /docker-entrypoint-initdb.d (*.sql and *.sql.gz through psql, executable
#     *.sh run, other *.sh sourced with the environment; 00-openfga-env.sh is
#     always sourced, even if executable), stops it and leaves a marker. A boot
#     that died half-way runs the (idempotent) scripts again.
#  3. Later boots: no initialisation, no password needed.
#  4. exec postgres with the config; ssl=on when a certificate is present.
#
# Environment (defaults for the Unikraft/container layout):
#   PGDATA                    /volume/postgres
#   POSTGRES_CONFIG_DIR       /etc/postgresql/openfga   postgresql.conf, pg_hba.conf, pg_ident.conf
#   POSTGRES_INITDB_DIR       /docker-entrypoint-initdb.d
#   POSTGRES_RUN_DIR          /var/run/postgresql       socket and the installed TLS files
#   POSTGRES_TLS_DIR          /etc/postgresql/tls       server.crt + server.key (any owner/mode)
#   POSTGRES_TLS_SELF_SIGNED  false   true: without a certificate in POSTGRES_TLS_DIR, make a
#                                     self-signed one on first boot, kept on the volume
#   POSTGRES_OS_USER          postgres
#   POSTGRES_BINDIR           the directory of postgres/initdb/psql (default: PATH, then
#                             /usr/lib/postgresql/<major>/bin)
#   plus the names and passwords read by initdb.d/00-openfga-env.sh.
set -eu

log() { printf 'openfga-postgres: %s\n' "$*" >&2; }
die() {
	printf 'openfga-postgres: error: %s\n' "$*" >&2
	exit 1
}

: "${PGDATA:=/volume/postgres}"
: "${POSTGRES_CONFIG_DIR:=/etc/postgresql/openfga}"
: "${POSTGRES_INITDB_DIR:=/docker-entrypoint-initdb.d}"
: "${POSTGRES_RUN_DIR:=/var/run/postgresql}"
: "${POSTGRES_TLS_DIR:=/etc/postgresql/tls}"
: "${POSTGRES_TLS_SELF_SIGNED:=false}"
: "${POSTGRES_OS_USER:=postgres}"
export PGDATA POSTGRES_CONFIG_DIR POSTGRES_INITDB_DIR POSTGRES_RUN_DIR POSTGRES_TLS_DIR \
	POSTGRES_TLS_SELF_SIGNED POSTGRES_OS_USER
INIT_MARKER="$PGDATA/openfga-init.done"
SELF_SIGNED_DIR="$(dirname -- "$PGDATA")/tls"
INSTALLED_TLS_DIR="$POSTGRES_RUN_DIR/tls"

# The image's ENV does not reach a Unikraft rootfs: find the binaries ourselves.
find_bindir() {
	if [ -n "${POSTGRES_BINDIR:-}" ]; then
		PATH="$POSTGRES_BINDIR:$PATH"
	elif ! command -v initdb >/dev/null 2>&1; then
		for dir in /usr/lib/postgresql/*/bin; do
			[ -x "$dir/postgres" ] && PATH="$dir:$PATH"
		done
	fi
	export PATH
	command -v postgres >/dev/null 2>&1 || die "postgres not found: set POSTGRES_BINDIR or PATH"
}

# Drop the leading "postgres" the official image's CMD passes.
if [ "${1:-}" = postgres ]; then shift; fi

case "$POSTGRES_TLS_SELF_SIGNED" in
true | false) ;;
*) die "POSTGRES_TLS_SELF_SIGNED must be true or false, not '$POSTGRES_TLS_SELF_SIGNED'" ;;
esac

needs_init() { [ ! -e "$INIT_MARKER" ]; }

# Checks names and passwords (and reads *_FILE) before anything starts.
check_env() {
	[ -f "$POSTGRES_INITDB_DIR/00-openfga-env.sh" ] ||
		die "$POSTGRES_INITDB_DIR/00-openfga-env.sh is missing: POSTGRES_INITDB_DIR must hold images/postgres/initdb.d"
	# shellcheck disable=SC1091
	. "$POSTGRES_INITDB_DIR/00-openfga-env.sh"
}

tls_source() {
	if [ -e "$POSTGRES_TLS_DIR/server.crt" ] || [ -e "$POSTGRES_TLS_DIR/server.key" ]; then
		[ -r "$POSTGRES_TLS_DIR/server.crt" ] || die "$POSTGRES_TLS_DIR/server.key is there but server.crt is missing or unreadable"
		[ -r "$POSTGRES_TLS_DIR/server.key" ] || die "$POSTGRES_TLS_DIR/server.crt is there but server.key is missing or unreadable"
		echo "$POSTGRES_TLS_DIR"
	elif [ "$POSTGRES_TLS_SELF_SIGNED" = true ]; then
		echo "$SELF_SIGNED_DIR"
	fi
}

# PostgreSQL accepts a key owned by its user with no group/other access; a
# mounted secret rarely is, so install a copy that is.
install_tls() {
	src=$(tls_source) || exit 1
	if [ -z "$src" ]; then
		rm -f -- "$INSTALLED_TLS_DIR/server.crt" "$INSTALLED_TLS_DIR/server.key"
		return 0
	fi
	if [ "$src" = "$SELF_SIGNED_DIR" ] && [ ! -s "$src/server.key" ]; then
		make_self_signed "$src"
	fi
	(umask 077 && mkdir -p "$INSTALLED_TLS_DIR")
	cp -- "$src/server.crt" "$INSTALLED_TLS_DIR/server.crt.new"
	(umask 077 && cp -- "$src/server.key" "$INSTALLED_TLS_DIR/server.key.new")
	chmod 0644 "$INSTALLED_TLS_DIR/server.crt.new"
	chmod 0600 "$INSTALLED_TLS_DIR/server.key.new"
	if [ "$(id -u)" = 0 ]; then
		chown -R "$POSTGRES_OS_USER:" "$INSTALLED_TLS_DIR"
	fi
	mv -f -- "$INSTALLED_TLS_DIR/server.crt.new" "$INSTALLED_TLS_DIR/server.crt"
	mv -f -- "$INSTALLED_TLS_DIR/server.key.new" "$INSTALLED_TLS_DIR/server.key"
}

# A key made on this instance never leaves it; clients use sslmode=require.
make_self_signed() {
	command -v openssl >/dev/null 2>&1 || die "POSTGRES_TLS_SELF_SIGNED=true needs openssl in the image"
	(umask 077 && mkdir -p "$1")
	log "no certificate in $POSTGRES_TLS_DIR: making a self-signed one in $1"
	(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-days 3650 -subj "/CN=$(hostname 2>/dev/null || echo postgres)" \
		-keyout "$1/server.key" -out "$1/server.crt" 2>/dev/null) ||
		die "openssl could not make a self-signed certificate in $1"
}

as_root() {
	mkdir -p "$PGDATA" "$POSTGRES_RUN_DIR"
	# A restored or re-attached volume may carry another uid.
	find "$PGDATA" \! -user "$POSTGRES_OS_USER" -exec chown "$POSTGRES_OS_USER:" '{}' +
	chmod 0700 "$PGDATA"
	chown "$POSTGRES_OS_USER:" "$POSTGRES_RUN_DIR"
	chmod 0755 "$POSTGRES_RUN_DIR"
	if [ "$POSTGRES_TLS_SELF_SIGNED" = true ]; then
		mkdir -p "$SELF_SIGNED_DIR"
		chown "$POSTGRES_OS_USER:" "$SELF_SIGNED_DIR"
		chmod 0700 "$SELF_SIGNED_DIR"
	fi
	install_tls
	if [ -d "$SELF_SIGNED_DIR" ]; then chown -R "$POSTGRES_OS_USER:" "$SELF_SIGNED_DIR"; fi
	export OPENFGA_POSTGRES_DROPPED=1
	if command -v setpriv >/dev/null 2>&1; then
		exec setpriv --reuid="$POSTGRES_OS_USER" --regid="$POSTGRES_OS_USER" --init-groups -- /bin/sh "$0" "$@"
	elif command -v gosu >/dev/null 2>&1; then
		exec gosu "$POSTGRES_OS_USER" /bin/sh "$0" "$@"
	fi
	die "running as root and neither setpriv nor gosu is available to become $POSTGRES_OS_USER"
}

# The server never needs the role passwords in its environment.
unset_passwords() {
	unset POSTGRES_MIGRATOR_PASSWORD POSTGRES_APP_PASSWORD POSTGRES_READONLY_PASSWORD \
		POSTGRES_MIGRATOR_PASSWORD_FILE POSTGRES_APP_PASSWORD_FILE POSTGRES_READONLY_PASSWORD_FILE
}

# Socket-only server for the init scripts, in a private directory.
start_temp_server() {
	TEMP_SOCKET_DIR=$(mktemp -d)
	(
		unset_passwords
		# With ssl on, the hostssl lines of pg_hba.conf parse without warnings.
		if [ -s "$INSTALLED_TLS_DIR/server.key" ]; then set -- "$@" \
			-c ssl=on -c ssl_cert_file="$INSTALLED_TLS_DIR/server.crt" -c ssl_key_file="$INSTALLED_TLS_DIR/server.key"; fi
		exec postgres -D "$PGDATA" "$@" -c config_file="$POSTGRES_CONFIG_DIR/postgresql.conf" \
			-c hba_file="$POSTGRES_CONFIG_DIR/pg_hba.conf" -c ident_file="$POSTGRES_CONFIG_DIR/pg_ident.conf" \
			-c listen_addresses= -c port=5432 -c unix_socket_directories="$TEMP_SOCKET_DIR"
	) &
	TEMP_PID=$!
	# Whatever fails from here on, the temporary server does not outlive us.
	trap 'pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1; rmdir "$TEMP_SOCKET_DIR" 2>/dev/null || true' EXIT
	tries=0
	until pg_isready -q -h "$TEMP_SOCKET_DIR" -p 5432 -d postgres -U postgres; do
		kill -0 "$TEMP_PID" 2>/dev/null || die "the server exited during initialisation (see its log above)"
		tries=$((tries + 1))
		[ "$tries" -lt 600 ] || die "the server did not accept connections within 60 s during initialisation"
		sleep 0.1
	done
}

stop_temp_server() {
	trap - EXIT
	pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
	wait "$TEMP_PID" || true
	rmdir "$TEMP_SOCKET_DIR"
}

run_init_files() {
	for f in "$POSTGRES_INITDB_DIR"/*; do
		case "$f" in
		*/00-openfga-env.sh)
			# Always sourced, whatever its mode: run (the official rule for an
			# executable *.sh) its exports would die with the child shell.
			log "sourcing $f"
			# shellcheck disable=SC1090
			. "$f"
			;;
		*.sh)
			if [ -x "$f" ]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			log "running $f"
			psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password -q -f "$f" >/dev/null
			;;
		*.sql.gz)
			log "running $f"
			gunzip -c "$f" | psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password -q >/dev/null
			;;
		*) log "ignoring $f" ;;
		esac
	done
}

initialise() {
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		if [ -n "$(ls -A "$PGDATA")" ]; then
			die "$PGDATA is not empty but holds no database (no PG_VERSION): point PGDATA at an empty or new subdirectory of the volume"
		fi
		log "first boot: initdb in $PGDATA"
		initdb -D "$PGDATA" --username=postgres --encoding=UTF8 --locale=C \
			--data-checksums --auth-local=peer --auth-host=scram-sha-256 >/dev/null
	else
		log "$PGDATA has a database but its initialisation did not finish: running the init scripts again"
	fi
	start_temp_server "$@"
	PGHOST=$TEMP_SOCKET_DIR PGPORT=5432 PGUSER=postgres PGDATABASE=postgres run_init_files
	stop_temp_server
	touch "$INIT_MARKER"
	log "initialisation complete"
}

find_bindir
if [ "$(id -u)" = 0 ]; then
	if [ "${OPENFGA_POSTGRES_DROPPED:-}" = 1 ]; then
		die "still root after switching to $POSTGRES_OS_USER: this runtime did not apply setuid, and PostgreSQL refuses to run as root. Start the image as $POSTGRES_OS_USER, or on a runtime that switches users"
	fi
	# Bad names or passwords stop here, before a directory is created.
	if needs_init; then check_env; fi
	as_root "$@"
fi
# Root installed the TLS files before switching; a non-root start does it now.
if [ "${OPENFGA_POSTGRES_DROPPED:-}" != 1 ]; then install_tls; fi
unset OPENFGA_POSTGRES_DROPPED

if needs_init; then
	check_env
	initialise "$@"
else
	log "database already initialised: starting"
fi
unset_passwords

set -- -c config_file="$POSTGRES_CONFIG_DIR/postgresql.conf" \
	-c hba_file="$POSTGRES_CONFIG_DIR/pg_hba.conf" \
	-c ident_file="$POSTGRES_CONFIG_DIR/pg_ident.conf" \
	-c unix_socket_directories="$POSTGRES_RUN_DIR" "$@"
if [ -s "$INSTALLED_TLS_DIR/server.key" ]; then
	set -- -c ssl=on -c ssl_cert_file="$INSTALLED_TLS_DIR/server.crt" \
		-c ssl_key_file="$INSTALLED_TLS_DIR/server.key" "$@"
else
	log "no TLS certificate in $POSTGRES_TLS_DIR: TLS is off and pg_hba.conf refuses every network login"
fi
exec postgres -D "$PGDATA" "$@"
