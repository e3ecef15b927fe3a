// pgxprobe reports how the real pgx (the version OpenFGA v1.22.1 links) reads
// datastore URIs, so the tests can hold our Python classifier to it.
//
// Input: JSON lines {"uri": "...", "env": {"PGHOST": "..."}} on stdin.
// Output: one JSON line per input with what pgx.ParseConfig returned: every
// connection attempt in order (the main config, then each fallback) with its
// host, port and whether it uses TLS, plus the user and database. "migrate" is
// the same after OpenFGA's `migrate` rewrite of the URI (copied verbatim from
// openfga v1.22.1 pkg/storage/migrate/migrate.go, postgres case); "url_user"
// is what Go's url.Parse calls the user (OpenFGA's server uses it when a
// password comes from OPENFGA_DATASTORE_PASSWORD).
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

type attempt struct {
	Host string `json:"host"`
	Port uint16 `json:"port"`
	TLS  bool   `json:"tls"`
}

type parsed struct {
	OK             bool      `json:"ok"`
	Error          string    `json:"error,omitempty"`
	Attempts       []attempt `json:"attempts,omitempty"`
	User           string    `json:"user"`
	Database       string    `json:"database"`
	PasswordSet    bool      `json:"password_set"`
	PasswordSHA256 string    `json:"password_sha256,omitempty"`
}

type input struct {
	URI string            `json:"uri"`
	Env map[string]string `json:"env"`
}

type output struct {
	Pgx     parsed  `json:"pgx"`
	Migrate parsed  `json:"migrate"`
	URLUser *string `json:"url_user"`
}

func parse(uri string) parsed {
	cfg, err := pgx.ParseConfig(uri)
	if err != nil {
		return parsed{Error: err.Error()}
	}
	out := parsed{OK: true, User: cfg.User, Database: cfg.Database, PasswordSet: cfg.Password != ""}
	if cfg.Password != "" {
		sum := sha256.Sum256([]byte(cfg.Password))
		out.PasswordSHA256 = hex.EncodeToString(sum[:])
	}
	out.Attempts = append(out.Attempts, attempt{cfg.Host, cfg.Port, cfg.TLSConfig != nil})
	for _, fb := range cfg.Fallbacks {
		out.Attempts = append(out.Attempts, attempt{fb.Host, fb.Port, fb.TLSConfig != nil})
	}
	return out
}

// migrateURI is OpenFGA v1.22.1's rewrite (no --datastore-username/-password given).
func migrateURI(uri string) (string, error) {
	var username, password string
	dbURI, err := url.Parse(uri)
	if err != nil {
		return "", err
	}
	if dbURI.User != nil {
		username = dbURI.User.Username()
		password, _ = dbURI.User.Password()
	}
	dbURI.User = url.UserPassword(username, password)
	return dbURI.String(), nil
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<22)
	enc := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req input
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			panic(err)
		}
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "PG") {
				os.Unsetenv(strings.SplitN(kv, "=", 2)[0])
			}
		}
		for k, v := range req.Env {
			os.Setenv(k, v)
		}
		var out output
		out.Pgx = parse(req.URI)
		if rewritten, err := migrateURI(req.URI); err != nil {
			out.Migrate = parsed{Error: "invalid database uri: " + err.Error()}
		} else {
			out.Migrate = parse(rewritten)
		}
		if u, err := url.Parse(req.URI); err == nil && u.User != nil {
			name := u.User.Username()
			out.URLUser = &name
		}
		if err := enc.Encode(out); err != nil {
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
