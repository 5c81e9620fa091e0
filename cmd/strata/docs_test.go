package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every `strata ...` command line shown in README.md and docs/*.md must parse against the real
// command tree: the command exists and every flag it uses is defined. (The quickstart lines are
// also executed for real by the demo test in examples/quickstart.)
func TestDocsCommandLinesParse(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	checked := 0
	for _, f := range files {
		for _, line := range strataLines(t, f) {
			args, err := shellWords(line)
			if err != nil {
				t.Errorf("%s: %q: %v", f, line, err)
				continue
			}
			var o, e bytes.Buffer
			root := newRootCmd(&o, &e)
			// --help after the args: cobra validates command and flags, then prints help instead of running.
			root.SetArgs(append(args[1:], "--help"))
			if err := root.ExecuteContext(context.Background()); err != nil {
				t.Errorf("%s: %q does not parse: %v", f, line, err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no strata command lines found in docs: the extractor is broken")
	}
	t.Logf("%d command lines checked", checked)
}

// strataLines returns the command lines starting with "strata " inside fenced sh/bash/yaml blocks,
// joining backslash continuations and dropping comments, $(...) prefixes and env assignments.
func strataLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	inBlock := false
	var cont string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			continue
		}
		if cont != "" {
			trimmed = cont + " " + trimmed
			cont = ""
		}
		if strings.HasSuffix(trimmed, `\`) {
			cont = strings.TrimSuffix(trimmed, `\`)
			continue
		}
		trimmed = strings.TrimPrefix(trimmed, "- ") // YAML script lists
		trimmed = strings.TrimPrefix(trimmed, "run: ")
		if i := strings.Index(trimmed, " #"); i >= 0 {
			trimmed = trimmed[:i]
		}
		if strings.HasPrefix(trimmed, `eval "$(`) {
			trimmed = strings.TrimSuffix(strings.TrimPrefix(trimmed, `eval "$(`), `)"`)
		}
		for strings.Contains(strings.SplitN(trimmed, " ", 2)[0], "=") { // VAR=value strata ...
			parts := strings.SplitN(trimmed, " ", 2)
			if len(parts) < 2 {
				break
			}
			trimmed = parts[1]
		}
		if strings.HasPrefix(trimmed, "strata ") {
			if i := strings.IndexAny(trimmed, "|>;&"); i >= 0 {
				trimmed = strings.TrimSpace(trimmed[:i])
			}
			out = append(out, trimmed)
		}
	}
	return out
}

// shellWords splits a command line like a POSIX shell would for simple quoting.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, os.ErrInvalid
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
