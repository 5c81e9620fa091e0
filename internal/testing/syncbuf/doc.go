// Package syncbuf is a bytes.Buffer that concurrent writers can share: a log destination for
// tests whose code under test logs from several goroutines.
package syncbuf
