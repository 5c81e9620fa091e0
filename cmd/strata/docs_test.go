package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"strata.dev/strata/config"
)

// Every `strata ...` command line shown in README.md and docs/*.md must parse against the real
// command tree: the command exists and every flag it uses is defined. (The "By hand" block of
// docs/quickstart.md is also executed for real by TestQuickstartDoc in internal/testing/demo.)
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
			if err := validateCommandLine(args[1:]); err != nil {
				t.Errorf("%s: %q: %v", f, line, err)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no strata command lines found in docs: the extractor is broken")
	}
	t.Logf("%d command lines checked", checked)
}

// validateCommandLine resolves args against the real command tree the way cobra would before
// running: the command exists and is runnable (a misspelt subcommand is not), every flag is
// defined and takes the value given, and the positional arguments satisfy the command's Args.
func validateCommandLine(args []string) error {
	root := newRootCmd(&bytes.Buffer{}, &bytes.Buffer{})
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if !cmd.Runnable() {
		return fmt.Errorf("%s is not a runnable command (rest %v)", cmd.CommandPath(), rest)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	return cmd.ValidateRequiredFlags()
}

// The validator itself rejects what it must, so a green docs test means something.
func TestValidateCommandLineRejects(t *testing.T) {
	for _, bad := range [][]string{
		{"bundle", "publsh", "--repo", "x"},
		{"bundle", "render", "--no-such-flag"},
		{"version", "extra-arg"},
		{"image-updater", "run", "--interval", "soon"},
	} {
		if err := validateCommandLine(bad); err == nil {
			t.Errorf("strata %s accepted", strings.Join(bad, " "))
		}
	}
	if err := validateCommandLine([]string{"bundle", "render", "reg.example/b:1.0.0", "--set", "a=b"}); err != nil {
		t.Errorf("valid line rejected: %v", err)
	}
}

// Every docs/*.md and README.md a document links to (by path in text or link) exists.
func TestDocsReferencesExist(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	ref := regexp.MustCompile("(?:docs/)?[a-z0-9-]+\\.md\\b")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllString(string(b), -1) {
			name := strings.TrimPrefix(m, "docs/")
			if name == "README.md" || name == "DEVELOPERS.md" {
				continue
			}
			if _, err := os.Stat(filepath.Join("../../docs", name)); err != nil {
				t.Errorf("%s mentions %s, which does not exist", f, m)
			}
		}
	}
}

// Every yaml block in the docs parses (multi-document), so examples cannot rot into invalid YAML.
func TestDocsYAMLBlocksParse(t *testing.T) {
	files, _ := filepath.Glob("../../docs/*.md")
	files = append(files, "../../README.md")
	blocks := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(string(b), "```yaml\n")
		for _, p := range parts[1:] {
			body, _, _ := strings.Cut(p, "```")
			dec := yaml.NewDecoder(strings.NewReader(body))
			for {
				var v any
				if err := dec.Decode(&v); err == io.EOF {
					break
				} else if err != nil {
					t.Errorf("%s: yaml block %q...: %v", f, firstLine(body), err)
					break
				}
			}
			blocks++
		}
	}
	if blocks == 0 {
		t.Fatal("no yaml blocks found")
	}
	t.Logf("%d yaml blocks parsed", blocks)
}

// The full example of docs/strata-yaml.md is accepted by the real parser, key by key.
func TestStrataYAMLDocExampleParses(t *testing.T) {
	b, err := os.ReadFile("../../docs/strata-yaml.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, _ := strings.Cut(string(b), "```yaml\n")
	example, _, _ := strings.Cut(after, "```")
	cfg, err := config.Parse("docs/strata-yaml.md", []byte(example))
	if err != nil {
		t.Fatalf("the documented strata.yaml does not parse: %v", err)
	}
	if cfg.Project != "shop" || len(cfg.Images) != 2 {
		t.Errorf("parsed project %q with %d images", cfg.Project, len(cfg.Images))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
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
