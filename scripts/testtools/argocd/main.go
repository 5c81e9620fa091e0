// Command argocd is the test environment's Argo CD: the components of Argo CD's multi-call
// binary that the tests run (argocd-repo-server, argocd-application-controller,
// argocd-cmp-server, argocd-applicationset-controller, and argocd-git-ask-pass, which the
// repo-server hands to git as GIT_ASKPASS), chosen as upstream chooses them: by
// ARGOCD_BINARY_NAME, else by the name the binary was started under. It leaves out the API
// server, the CLI, Dex and notifications, whose packages are a third of upstream's binary and of
// its cold build time; the components themselves are upstream's, unchanged.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	applicationset "github.com/argoproj/argo-cd/v3/cmd/argocd-applicationset-controller/commands"
	cmpserver "github.com/argoproj/argo-cd/v3/cmd/argocd-cmp-server/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/util/log"
)

// components maps a binary name to its command; quiet ones print their own errors, as
// upstream's CLI-like components do.
var components = map[string]struct {
	command func() *cobra.Command
	quiet   bool
}{
	"argocd-application-controller":    {command: appcontroller.NewCommand},
	"argocd-applicationset-controller": {command: applicationset.NewCommand},
	"argocd-cmp-server":                {command: cmpserver.NewCommand, quiet: true},
	"argocd-git-ask-pass":              {command: gitaskpass.NewCommand, quiet: true},
	"argocd-repo-server":               {command: reposerver.NewCommand},
}

func main() {
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
	name := filepath.Base(os.Args[0])
	if v := os.Getenv("ARGOCD_BINARY_NAME"); v != "" {
		name = v
	}
	c, ok := components[name]
	if !ok {
		names := make([]string, 0, len(components))
		for n := range components {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "argocd (strata test environment): no component %q; set ARGOCD_BINARY_NAME to one of %v\n", name, names)
		os.Exit(2)
	}
	cmd := c.command()
	if c.quiet {
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
	}
	if err := cmd.Execute(); err != nil {
		if c.quiet {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(1)
	}
}
