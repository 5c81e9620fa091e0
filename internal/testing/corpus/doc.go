// Package corpus reads the werf.yaml/strata.yaml test corpus (config/testdata/corpus): each case
// is a header and the files committed for it. config's test parses every case; build's test
// builds the cases marked "build: yes" on the real engine and registry.
package corpus
