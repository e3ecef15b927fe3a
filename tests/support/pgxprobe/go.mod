module local.test/pgxprobe

go 1.25.0

// pgx and the two modules it reads config with, at the versions
// github.com/openfga/openfga v1.22.1 requires (its go.mod).
require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/jackc/pgx/v5 v5.11.0
)

require golang.org/x/text v0.29.0 // indirect
