package core_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMELibraryExample keeps the README's library snippet identical
// to the body of Example, which go test compiles and runs.
func TestREADMELibraryExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	body, ok := between(string(src), "func Example() {\n", "\t// Output:")
	if !ok {
		t.Fatal("example_test.go: no Example function with an Output block")
	}
	var want strings.Builder
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		want.WriteString(strings.TrimPrefix(l, "\t") + "\n")
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, lib, _ := strings.Cut(string(readme), "\n## Library\n")
	got, ok := between(lib, "```go\n", "```\n")
	if !ok {
		t.Fatal("README.md: no go code block under ## Library")
	}
	if got != want.String() {
		t.Errorf("README.md's library snippet differs from core/example_test.go's Example; put this in the README:\n%s", want.String())
	}
}

// between returns the text of s after start and before the next end.
func between(s, start, end string) (string, bool) {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return "", false
	}
	in, _, ok := strings.Cut(rest, end)
	return in, ok
}
