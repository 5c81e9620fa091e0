package httplock

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveUntilReady runs Serve, checks /healthz at the bound address, then stops it.
func serveUntilReady(t *testing.T, o ServeOptions) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	o.Ready = func(addr string) { ready <- addr }
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, o) }()
	select {
	case addr := <-ready:
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("healthz at %s: %v", addr, err)
		}
		resp.Body.Close()
		cancel()
		return <-errc
	case err := <-errc:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Serve neither listened nor failed")
		return nil
	}
}

func TestServeRefusesNonLoopbackWithoutToken(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:0"} {
		err := serveUntilReady(t, ServeOptions{Listen: listen})
		if err == nil {
			t.Fatalf("listen %s without a token: served", listen)
		}
		for _, w := range []string{listen, "not a loopback address", "--token", "--insecure", "127.0.0.1"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("listen %s: error %q does not say %q", listen, err, w)
			}
		}
	}
	// loopback without a token, and with a token, serve
	for _, o := range []ServeOptions{{Listen: "127.0.0.1:0"}, {Listen: "localhost:0"}, {Listen: "127.0.0.1:0", ServerOptions: ServerOptions{Token: "t"}}} {
		if err := serveUntilReady(t, o); err != nil {
			t.Errorf("listen %s (token %q): %v", o.Listen, o.Token, err)
		}
	}
}

// A non-loopback address is only checked here, never bound: tests listen on loopback only.
func TestExposureWithTokenOrInsecure(t *testing.T) {
	ctx := context.Background()
	if err := checkExposure(ctx, ServeOptions{Listen: "0.0.0.0:7373", ServerOptions: ServerOptions{Token: "t"}}); err != nil {
		t.Errorf("with a token: %v", err)
	}
	var logs bytes.Buffer
	o := ServeOptions{Listen: "0.0.0.0:7373", Insecure: true, ServerOptions: ServerOptions{Log: slog.New(slog.NewTextHandler(&logs, nil))}}
	if err := checkExposure(ctx, o); err != nil {
		t.Errorf("--insecure: %v", err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "without a token") {
		t.Errorf("--insecure logged no warning: %q", logs.String())
	}
}
