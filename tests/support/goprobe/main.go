// goprobe reads flags with Go's own flag package, as the go command and the
// linker do, and prints what it read as JSON; a value stamped with -X shows that
// a quoted -ldflags field arrives whole. Used by tests/real/test_goflags.py.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
)

var greeting = "unset" // set with -ldflags "-X main.greeting=..."

func main() {
	if len(os.Args) > 1 && os.Args[1] == "greeting" {
		fmt.Print(greeting)
		return
	}
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, name := range []string{"a", "v", "x", "trimpath", "s", "w", "race", "msan", "asan",
		"cover", "n", "linkshared", "json"} {
		fs.Bool(name, false, "")
	}
	for _, name := range []string{"p", "mod", "buildmode", "pgo", "X", "linkmode", "extldflags",
		"extld", "extar", "H", "r", "L", "E", "T", "toolexec", "overlay", "modfile", "gcflags",
		"ldflags", "tags", "o", "C", "buildvcs", "exec", "compiler"} {
		fs.String(name, "", "")
	}
	out := map[string]any{}
	if err := fs.Parse(os.Args[1:]); err != nil {
		out["error"] = err.Error()
	} else {
		seen := map[string]string{}
		fs.Visit(func(f *flag.Flag) { seen[f.Name] = f.Value.String() })
		out["flags"] = seen
		out["rest"] = fs.Args()
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
