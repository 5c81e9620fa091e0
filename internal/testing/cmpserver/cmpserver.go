package cmpserver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	argocmp "github.com/argoproj/argo-cd/v3/cmpserver"
	"github.com/argoproj/argo-cd/v3/cmpserver/apiclient"
	"github.com/argoproj/argo-cd/v3/cmpserver/plugin"
	repoclient "github.com/argoproj/argo-cd/v3/reposerver/apiclient"
	"github.com/argoproj/argo-cd/v3/util/cmp"
	"google.golang.org/grpc"
)

// Server is a running CMP server.
type Server struct {
	cfg    *plugin.PluginConfig
	grpc   *grpc.Server
	sock   string
	tmp    string
	client apiclient.ConfigManagementPluginServiceClient
	closer interface{ Close() error }
}

// Start reads pluginYAML, validates it with Argo CD's own validation and serves it on a unix
// socket. The plugin's commands run with this process's environment: PATH must find them.
// It sets ARGOCD_PLUGINSOCKFILEPATH and ARGOCD_CMP_WORKDIR (process-wide) to fresh temp dirs.
func Start(pluginYAML []byte) (*Server, error) {
	tmp, err := os.MkdirTemp("", "cmp-") // short: unix socket paths must stay under 108 bytes
	if err != nil {
		return nil, err
	}
	s := &Server{tmp: tmp}
	cfgDir := filepath.Join(tmp, "config")
	for _, d := range []string{cfgDir, filepath.Join(tmp, "sock"), filepath.Join(tmp, "work")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(cfgDir, "plugin.yaml"), pluginYAML, 0o644); err != nil {
		s.Close()
		return nil, err
	}
	os.Setenv("ARGOCD_PLUGINSOCKFILEPATH", filepath.Join(tmp, "sock"))
	os.Setenv("ARGOCD_CMP_WORKDIR", filepath.Join(tmp, "work"))
	s.cfg, err = plugin.ReadPluginConfig(cfgDir)
	if err == nil {
		err = plugin.ValidatePluginConfig(*s.cfg)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("plugin.yaml: %w", err)
	}
	srv, err := argocmp.NewServer(plugin.CMPServerInitConstants{PluginConfig: *s.cfg})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("CMP server: %w", err)
	}
	if s.grpc, err = srv.CreateGRPC(); err != nil {
		s.Close()
		return nil, fmt.Errorf("CMP server: %w", err)
	}
	s.sock = s.cfg.Address()
	lis, err := net.Listen("unix", s.sock)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("CMP socket: %w", err)
	}
	go func() { _ = s.grpc.Serve(lis) }()
	closer, client, err := apiclient.NewConfigManagementPluginClientSet(s.sock).NewConfigManagementPluginClient()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("CMP client: %w", err)
	}
	s.client, s.closer = client, closer
	return s, nil
}

// Close stops the server and removes its files.
func (s *Server) Close() {
	if s.closer != nil {
		s.closer.Close()
	}
	if s.grpc != nil {
		s.grpc.Stop()
	}
	os.RemoveAll(s.tmp)
}

// Client returns the gRPC client of the server.
func (s *Server) Client() apiclient.ConfigManagementPluginServiceClient { return s.client }

// Generate streams appDir (inside repoRoot; "" = appDir) with env to the plugin, like
// argocd-repo-server, and returns the generated manifests.
func (s *Server) Generate(ctx context.Context, repoRoot, appDir string, env []string) ([]string, error) {
	if repoRoot == "" {
		repoRoot = appDir
	}
	stream, err := s.client.GenerateManifest(ctx)
	if err != nil {
		return nil, err
	}
	if err := cmp.SendRepoStream(ctx, appDir, repoRoot, stream, env, nil); err != nil {
		return nil, fmt.Errorf("send %s: %w", appDir, err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.Manifests, nil
}

// Match asks the plugin's discovery whether appDir is its kind of application.
func (s *Server) Match(ctx context.Context, appDir string, env []string) (bool, error) {
	stream, err := s.client.MatchRepository(ctx)
	if err != nil {
		return false, err
	}
	if err := cmp.SendRepoStream(ctx, appDir, appDir, stream, env, nil); err != nil {
		return false, fmt.Errorf("send %s: %w", appDir, err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return false, err
	}
	return resp.IsSupported, nil
}

// Parameters returns the plugin's parameter announcement for appDir (dynamic, then static).
func (s *Server) Parameters(ctx context.Context, appDir string, env []string) ([]*repoclient.ParameterAnnouncement, error) {
	stream, err := s.client.GetParametersAnnouncement(ctx)
	if err != nil {
		return nil, err
	}
	if err := cmp.SendRepoStream(ctx, appDir, appDir, stream, env, nil); err != nil {
		return nil, fmt.Errorf("send %s: %w", appDir, err)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.ParameterAnnouncements, nil
}
