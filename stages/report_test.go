package stages

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A report file written by `strata build --report` (MarshalIndent, two spaces, final newline)
// reads back to the same bytes.
func TestReportFileRoundTrip(t *testing.T) {
	want, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReadReport("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, '\n'); !bytes.Equal(got, want) {
		t.Errorf("re-encoded report differs:\n%s\nwant:\n%s", got, want)
	}
	im := r.Image("api")
	if im == nil || im.ManifestDigest != "sha256:"+strings.Repeat("b", 64) || len(im.Stages) != 2 || im.Stages[1].Status != StatusReused {
		t.Errorf("Image(api) = %+v", im)
	}
	if r.Image("nope") != nil {
		t.Error("Image(nope) found an image")
	}
}

// WriteReport writes what ReadReport reads, in the format of the report files build wrote
// before (indented, final newline), and leaves no temporary file.
func TestWriteReport(t *testing.T) {
	r, err := ReadReport("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "report.json")
	if err := WriteReport(file, r); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile("testdata/report.json"); !bytes.Equal(got, want) {
		t.Errorf("written report differs:\n%s\nwant:\n%s", got, want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("files left: %v", entries)
	}
	if err := WriteReport(filepath.Join(dir, "missing", "r.json"), r); err == nil || !strings.Contains(err.Error(), "write report") {
		t.Errorf("WriteReport into a missing directory: %v", err)
	}
}

// Bundle publish reads the report's image references only: a report with just those parses.
func TestParseReportMinimal(t *testing.T) {
	r, err := ParseReport([]byte(`{"project":"p","repo":"r","commit":"c","images":[{"name":"app","repo":"r","tag":"t","ref":"r:t","manifestDigest":"sha256:1"}],"future":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Project != "p" || len(r.Images) != 1 || r.Images[0].Ref != "r:t" || r.Images[0].Stages != nil {
		t.Errorf("ParseReport = %+v", r)
	}
}

func TestReadReportErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "missing.json"), "build report: open "},
		{write("empty.json", `{"project":"p","images":[]}`), "empty.json: no images"},
		{write("bad.json", `{"images":`), "bad.json: unexpected end of JSON input"},
		{write("types.json", `{"images":"app"}`), "types.json: json: cannot unmarshal"},
	} {
		_, err := ReadReport(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ReadReport(%s) = %v, want an error with %q", filepath.Base(c.file), err, c.want)
		}
	}
}
