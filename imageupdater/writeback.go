package imageupdater

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/template"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"strata.dev/strata/internal/git"
)

// Annotations of git write-back (upstream's names; write-back-key is Strata's).
const (
	AnnotationWriteBackTarget = upstreamPrefix + "write-back-target"
	AnnotationGitBranch       = upstreamPrefix + "git-branch"
	AnnotationGitRepository   = upstreamPrefix + "git-repository"
	// AnnotationWriteBackKey names the YAML key a helmvalues target sets (a.b.c); the
	// image-list alias's <alias>.helm.image-tag (upstream's key for the tag) is read too.
	AnnotationWriteBackKey = "strata.dev/write-back-key"

	annotationTrackingID = "argocd.argoproj.io/tracking-id"
	labelInstance        = "app.kubernetes.io/instance"
)

// Defaults of the git commit (upstream's template; Strata's author).
const (
	DefaultGitCommitUser  = "strata-image-updater"
	DefaultGitCommitEmail = "noreply@strata.dev"
	// DefaultGitCommitMessageTemplate is upstream argocd-image-updater's default message.
	DefaultGitCommitMessageTemplate = "build: automatic update of {{ .AppName }}\n\n{{ range .AppChanges -}}\nupdates image {{ .Image }} tag '{{ .OldTag }}' to '{{ .NewTag }}'\n{{ end -}}\n"
)

// Targets of git write-back.
const (
	targetApplication   = "application"   // the Application's own manifest in git (default for a bundle)
	targetHelmValues    = "helmvalues"    // a key of a YAML (values) file
	targetKustomization = "kustomization" // a patches entry in a kustomization
)

// gitAttempts bounds fetch → edit → commit → push rounds when pushes are rejected because the
// branch moved on.
const gitAttempts = 5

// writeBack is what an Application's write-back annotations ask for.
type writeBack struct {
	git        bool
	secret     string // "NS/NAME" or "NAME" (the Application's namespace); "": Argo CD's repository credentials
	target     string // targetApplication, targetHelmValues, targetKustomization
	path       string // of the target; "/x" from the repository root, else from the directory
	branch     string // git-branch as written: "", "base", "base:push", ":push"
	repository string // git-repository
	key        string // the YAML key a helmvalues target sets
}

// parseWriteBack reads write-back-method, write-back-target, git-branch, git-repository and the
// helmvalues key. Keys that only mean something with the git method are reported as warnings
// under the argocd method.
func parseWriteBack(ann map[string]string, alias string) (wb writeBack, warnings []string, err error) {
	method := strings.TrimSpace(ann[AnnotationWriteBackMethod])
	switch {
	case method == "" || method == "argocd":
		for _, k := range []string{AnnotationWriteBackTarget, AnnotationGitBranch, AnnotationGitRepository} {
			if _, ok := ann[k]; ok {
				warnings = append(warnings, fmt.Sprintf("annotation %s: only used with %s: git: ignored", k, AnnotationWriteBackMethod))
			}
		}
		return wb, warnings, nil
	case method == "git" || method == "git:repocreds":
		wb.git = true
	case strings.HasPrefix(method, "git:secret:"):
		wb.git, wb.secret = true, strings.TrimPrefix(method, "git:secret:")
		ns, name, hasNS := strings.Cut(wb.secret, "/")
		if name == "" && hasNS || ns == "" || strings.Contains(name, "/") {
			return wb, nil, fmt.Errorf("annotation %s: %q: want git:secret:NAMESPACE/NAME or git:secret:NAME", AnnotationWriteBackMethod, method)
		}
	default:
		return wb, nil, fmt.Errorf("annotation %s: %q: want argocd, git, git:repocreds or git:secret:NAMESPACE/NAME", AnnotationWriteBackMethod, method)
	}
	wb.branch = strings.TrimSpace(ann[AnnotationGitBranch])
	if strings.Count(wb.branch, ":") > 1 {
		return wb, nil, fmt.Errorf("annotation %s: %q: want BRANCH, BASE:TARGET or :TARGET", AnnotationGitBranch, wb.branch)
	}
	if strings.Contains(wb.branch, "{{") {
		if _, err := template.New("branch").Parse(wb.branch); err != nil {
			return wb, nil, fmt.Errorf("annotation %s: %w", AnnotationGitBranch, err)
		}
	}
	wb.repository = strings.TrimSpace(ann[AnnotationGitRepository])
	if wb.repository != "" && !strings.HasPrefix(wb.repository, "https://") && !strings.HasPrefix(wb.repository, "http://") {
		return wb, nil, fmt.Errorf("annotation %s: %q: only http(s) git URLs are supported (SSH is not)", AnnotationGitRepository, wb.repository)
	}
	target := strings.TrimSpace(ann[AnnotationWriteBackTarget])
	kind, p, _ := strings.Cut(target, ":")
	wb.path = strings.TrimSpace(p)
	switch kind {
	case "":
		wb.target = targetApplication
	case targetKustomization:
		wb.target = kind
	case targetHelmValues:
		wb.target = kind
		if wb.path == "" {
			return wb, nil, fmt.Errorf("annotation %s: helmvalues needs the values file: helmvalues:<path>", AnnotationWriteBackTarget)
		}
		if alias != "" {
			wb.key = strings.TrimSpace(ann[aliasKey(alias, "helm.image-tag")])
		}
		if k := strings.TrimSpace(ann[AnnotationWriteBackKey]); k != "" {
			wb.key = k
		}
		if wb.key == "" {
			return wb, nil, fmt.Errorf("annotation %s: helmvalues needs the key to write the revision to: set %s (e.g. shop.version)", AnnotationWriteBackTarget, AnnotationWriteBackKey)
		}
	default:
		return wb, nil, fmt.Errorf("annotation %s: %q: want kustomization[:<dir>] or helmvalues:<file> (none: the Application's own manifest)", AnnotationWriteBackTarget, target)
	}
	return wb, nil, nil
}

// gitLocation is where a git write goes.
type gitLocation struct {
	url    string
	base   string // branch to start from ("" : the remote's default)
	push   string // branch to push to (template, "" = base)
	dir    string // directory in the repository (slash-separated, "" root) relative targets start from
	parent *unstructured.Unstructured
}

// parentOf returns the Application that manages app (an app-of-apps parent), from Argo CD's
// resource tracking: the tracking-id annotation (annotation tracking, Argo CD 3's default) or
// the app.kubernetes.io/instance label.
func (c *controller) parentOf(app *unstructured.Unstructured) (*unstructured.Unstructured, string) {
	inst := ""
	if id := app.GetAnnotations()[annotationTrackingID]; id != "" {
		inst, _, _ = strings.Cut(id, ":")
	} else {
		inst = app.GetLabels()[labelInstance]
	}
	if inst == "" {
		return nil, ""
	}
	ns, name, ok := strings.Cut(inst, "_") // Applications in any namespace: <namespace>_<name>
	if !ok {
		ns, name = app.GetNamespace(), inst
	}
	p, found := c.get(ns + "/" + name)
	if !found {
		return nil, ns + "/" + name
	}
	return p, ns + "/" + name
}

// revertWarning says why an in-cluster write to app will not last: an app-of-apps parent
// manages it, or an ApplicationSet generates it ("" when neither).
func (c *controller) revertWarning(app *unstructured.Unstructured) string {
	for _, o := range app.GetOwnerReferences() {
		if o.Kind == "ApplicationSet" && strings.HasPrefix(o.APIVersion, "argoproj.io/") {
			return fmt.Sprintf("generated by ApplicationSet %s: the in-cluster write-back is reverted unless its ignoreApplicationDifferences covers targetRevision; or set %s: git (docs/image-updater.md, Write-back)", o.Name, AnnotationWriteBackMethod)
		}
	}
	if _, key := c.parentOf(app); key != "" {
		return fmt.Sprintf("managed by Application %s (Argo CD resource tracking): the in-cluster write-back is reverted when it syncs; set %s: git (docs/image-updater.md, Write-back)", key, AnnotationWriteBackMethod)
	}
	return ""
}

// locate finds the repository, branch and directory: git-repository and git-branch when set,
// else the app-of-apps parent's git source (its repoURL, targetRevision and path).
func (c *controller) locate(app *unstructured.Unstructured, wb writeBack) (gitLocation, error) {
	loc := gitLocation{url: wb.repository}
	parent, parentKey := c.parentOf(app)
	if parent != nil {
		srcs, _, err := applicationSources(parent)
		if err != nil {
			return loc, err
		}
		for _, s := range srcs {
			if s.Chart != "" || strings.HasPrefix(s.RepoURL, "oci://") || s.RepoURL == "" {
				continue
			}
			if loc.url == "" || sameGitURL(loc.url, s.RepoURL) {
				loc.url, loc.dir, loc.parent = s.RepoURL, strings.Trim(path.Clean("/"+s.Path), "/"), parent
				if rev := s.TargetRevision; rev != "" && rev != "HEAD" {
					loc.base = rev
				}
			}
			break
		}
	}
	if loc.url == "" {
		where := "no app-of-apps parent manages it (no " + annotationTrackingID + " or " + labelInstance + ")"
		if parentKey != "" {
			where = "its parent " + parentKey + " is not watched or has no git source"
		}
		return loc, fmt.Errorf("annotation %s: git: no git repository to write to: set %s (%s)", AnnotationWriteBackMethod, AnnotationGitRepository, where)
	}
	if !strings.HasPrefix(loc.url, "https://") && !strings.HasPrefix(loc.url, "http://") {
		return loc, fmt.Errorf("git write-back to %s: only http(s) git URLs are supported (SSH is not)", loc.url)
	}
	base, push, hasPush := strings.Cut(wb.branch, ":")
	if base != "" {
		loc.base = base
	}
	if hasPush {
		loc.push = push
	}
	return loc, nil
}

func sameGitURL(a, b string) bool {
	norm := func(u string) string {
		return strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimSpace(u), "/"), ".git"))
	}
	return norm(a) == norm(b)
}

// gitAuth reads the credentials: the write-back-method's Secret (username/password), else the
// Argo CD repository Secret (or the longest matching repo-creds template) for url, else none.
func (c *controller) gitAuth(ctx context.Context, app, parent *unstructured.Unstructured, wb writeBack, url string) (git.Auth, error) {
	if wb.secret != "" {
		ns, name, ok := strings.Cut(wb.secret, "/")
		if !ok {
			ns, name = app.GetNamespace(), wb.secret
		}
		s, err := c.kube.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return git.Auth{}, fmt.Errorf("annotation %s: Secret %s/%s: %w", AnnotationWriteBackMethod, ns, name, err)
		}
		u, p := string(s.Data["username"]), string(s.Data["password"])
		if p == "" {
			if _, ssh := s.Data["sshPrivateKey"]; ssh {
				return git.Auth{}, fmt.Errorf("annotation %s: Secret %s/%s holds an sshPrivateKey: Strata pushes over HTTPS only; give it username and password (a token)", AnnotationWriteBackMethod, ns, name)
			}
			return git.Auth{}, fmt.Errorf("annotation %s: Secret %s/%s has no password key (want username and password)", AnnotationWriteBackMethod, ns, name)
		}
		return git.Auth{Username: u, Password: p}, nil
	}
	// Argo CD keeps repository Secrets in its control-plane namespace: the Application's, or
	// (for Applications in other namespaces) its parent's.
	namespaces := []string{app.GetNamespace()}
	if parent != nil && parent.GetNamespace() != app.GetNamespace() {
		namespaces = append(namespaces, parent.GetNamespace())
	}
	var secrets []corev1.Secret
	for _, ns := range namespaces {
		list, err := c.kube.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "argocd.argoproj.io/secret-type in (repository,repo-creds)"})
		if err != nil {
			return git.Auth{}, fmt.Errorf("Argo CD repository credentials in %s (or name a Secret: %s: git:secret:NS/NAME): %w", ns, AnnotationWriteBackMethod, err)
		}
		secrets = append(secrets, list.Items...)
	}
	var best git.Auth
	bestLen := -1
	for _, s := range secrets {
		u := string(s.Data["url"])
		exact := s.Labels["argocd.argoproj.io/secret-type"] == "repository" && sameGitURL(u, url)
		prefix := s.Labels["argocd.argoproj.io/secret-type"] == "repo-creds" && u != "" && strings.HasPrefix(url, u)
		if !exact && !prefix {
			continue
		}
		n := len(u)
		if exact {
			n = 1 << 20
		}
		if n > bestLen && len(s.Data["password"]) > 0 {
			best, bestLen = git.Auth{Username: string(s.Data["username"]), Password: string(s.Data["password"])}, n
		}
	}
	return best, nil
}

// gitWrite is what one git write-back did.
type gitWrite struct {
	changed bool   // false: the file already said the revision
	old     string // what the file said before
	file    string // repository-relative
	commit  string
	branch  string
	url     string
}

// commitData is what the commit message template sees (upstream's fields).
type commitData struct {
	AppName, AppNamespace string
	AppChanges            []commitChange
}

type commitChange struct {
	Image, Alias, OldTag, NewTag string
}

// branchData is what a git-branch template sees (upstream's fields).
type branchData struct {
	AppName, AppNamespace, SHA256 string
	Images                        []branchImage
}

type branchImage struct {
	Name, Alias, OldTag, NewTag string
}

// gitRepos serializes writes to one scratch clone per repository URL.
type gitRepos struct {
	dir   string // Options.GitWorkDir, or a temporary directory made on first use
	mu    sync.Mutex
	temp  bool
	locks map[string]*sync.Mutex
}

func (g *gitRepos) lock(url string) (dir string, unlock func(), err error) {
	h := sha256.Sum256([]byte(url))
	key := hex.EncodeToString(h[:8])
	g.mu.Lock()
	if g.dir == "" {
		if g.dir, err = os.MkdirTemp("", "strata-image-updater-git-"); err != nil {
			g.mu.Unlock()
			return "", nil, fmt.Errorf("git write-back work directory: %w", err)
		}
		g.temp = true
	}
	if g.locks == nil {
		g.locks = map[string]*sync.Mutex{}
	}
	m := g.locks[key]
	if m == nil {
		m = &sync.Mutex{}
		g.locks[key] = m
	}
	g.mu.Unlock()
	m.Lock()
	return filepath.Join(g.dir, key), m.Unlock, nil
}

// cleanup removes the temporary work directory.
func (g *gitRepos) cleanup() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.temp {
		_ = os.RemoveAll(g.dir)
		g.dir, g.temp = "", false
	}
}

// writeGit writes d.target to git: fetch the branch, edit the target file, commit, push. A
// rejected push (the branch moved on) fetches again and re-applies the edit, at most gitAttempts
// times; nothing is ever force-pushed. No commit when the file already says the revision.
func (c *controller) writeGit(ctx context.Context, app *unstructured.Unstructured, d decision, log *slog.Logger) (gitWrite, error) {
	wb := d.writeBack
	if _, err := exec.LookPath("git"); err != nil {
		return gitWrite{}, fail(reasonWriteError, fmt.Errorf("write-back-method git needs the git CLI on PATH (the image from Dockerfile.image-updater has it; a replacement image needs git with git-remote-https): %w", err))
	}
	loc, err := c.locate(app, wb)
	if err != nil {
		return gitWrite{}, fail(reasonInvalid, err)
	}
	auth, err := c.gitAuth(ctx, app, loc.parent, wb, loc.url)
	if err != nil {
		return gitWrite{}, fail(reasonWriteError, err)
	}
	dir, unlock, err := c.git.lock(loc.url)
	if err != nil {
		return gitWrite{}, fail(reasonWriteError, err)
	}
	defer unlock()
	repo, err := git.Init(ctx, dir)
	if err != nil {
		return gitWrite{}, fail(reasonWriteError, err)
	}
	base := loc.base
	if base == "" {
		if base, err = repo.DefaultBranch(ctx, loc.url, auth); err != nil {
			return gitWrite{}, fail(reasonWriteError, err)
		}
	}
	change := commitChange{Image: d.source.repository, Alias: d.alias, OldTag: d.source.current, NewTag: d.target}
	push := base
	if loc.push != "" {
		if push, err = c.branchName(loc.push, app, change); err != nil {
			return gitWrite{}, fail(reasonInvalid, err)
		}
	}
	w := gitWrite{url: loc.url, branch: push}
	for attempt := 1; ; attempt++ {
		tip, err := repo.FetchBranch(ctx, loc.url, push, auth)
		if errors.Is(err, git.ErrNoBranch) && push != base {
			tip, err = repo.FetchBranch(ctx, loc.url, base, auth)
		}
		if err != nil {
			return w, fail(reasonWriteError, err)
		}
		if err := repo.Checkout(ctx, tip); err != nil {
			return w, fail(reasonWriteError, err)
		}
		if w.file, w.old, w.changed, err = c.editTarget(repo.Dir, loc, app, d); err != nil {
			return w, fail(reasonInvalid, fmt.Errorf("git write-back to %s@%s: %w", loc.url, push, err))
		}
		if !w.changed {
			return w, nil
		}
		if w.old == "" {
			w.old = d.source.current // a new entry (kustomization patch, values key): what the cluster says
		}
		change.OldTag = orNone(w.old)
		msg, err := c.commitMessage(app, change)
		if err != nil {
			return w, fail(reasonInvalid, err)
		}
		if w.commit, err = repo.CommitAll(ctx, msg, git.Signature{Name: c.opts.GitCommitUser, Email: c.opts.GitCommitEmail}); err != nil {
			return w, fail(reasonWriteError, err)
		}
		err = repo.Push(ctx, loc.url, w.commit, push, auth)
		if err == nil {
			break
		}
		if !errors.Is(err, git.ErrPushRejected) || attempt == gitAttempts {
			return w, fail(reasonWriteError, fmt.Errorf("push to %s@%s (attempt %d): %w", loc.url, push, attempt, err))
		}
		log.Debug("git push rejected (the branch moved on); fetching and applying again", "attempt", attempt, "branch", push)
	}
	if push == base {
		c.refreshManagers(ctx, app, loc.parent, log)
	}
	return w, nil
}

// applicationSets is Argo CD's ApplicationSet resource (only its refresh annotation is written).
var applicationSets = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applicationsets"}

// refreshManagers asks Argo CD to read git again now rather than at its next poll: the
// app-of-apps parent gets argocd.argoproj.io/refresh: normal, an owning ApplicationSet
// argocd.argoproj.io/application-set-refresh: "true" (what Argo CD's git webhook sets). A
// failure is logged only: the poll still picks the commit up.
func (c *controller) refreshManagers(ctx context.Context, app, parent *unstructured.Unstructured, log *slog.Logger) {
	if parent != nil {
		patch := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/refresh":"normal"}}}`)
		if _, err := c.dyn.Resource(applications).Namespace(parent.GetNamespace()).Patch(ctx, parent.GetName(), types.MergePatchType, patch, metav1.PatchOptions{FieldManager: component}); err != nil {
			log.Warn("refresh parent Application after git write-back", "parent", parent.GetNamespace()+"/"+parent.GetName(), "error", err)
		}
	}
	for _, o := range app.GetOwnerReferences() {
		if o.Kind != "ApplicationSet" || !strings.HasPrefix(o.APIVersion, "argoproj.io/") {
			continue
		}
		patch := []byte(`{"metadata":{"annotations":{"argocd.argoproj.io/application-set-refresh":"true"}}}`)
		if _, err := c.dyn.Resource(applicationSets).Namespace(app.GetNamespace()).Patch(ctx, o.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: component}); err != nil {
			log.Warn("refresh ApplicationSet after git write-back", "applicationset", app.GetNamespace()+"/"+o.Name, "error", err)
		}
	}
}

func (c *controller) commitMessage(app *unstructured.Unstructured, ch commitChange) (string, error) {
	var b bytes.Buffer
	data := commitData{AppName: app.GetName(), AppNamespace: app.GetNamespace(), AppChanges: []commitChange{ch}}
	if err := c.commitTemplate.Execute(&b, data); err != nil {
		return "", fmt.Errorf("git commit message template: %w", err)
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", fmt.Errorf("git commit message template: empty message")
	}
	return b.String(), nil
}

func (c *controller) branchName(tmpl string, app *unstructured.Unstructured, ch commitChange) (string, error) {
	if !strings.Contains(tmpl, "{{") {
		return tmpl, nil
	}
	t, err := template.New("branch").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("annotation %s: %w", AnnotationGitBranch, err)
	}
	h := sha256.Sum256([]byte(ch.Image + ":" + ch.OldTag + ":" + ch.NewTag))
	var b strings.Builder
	if err := t.Execute(&b, branchData{AppName: app.GetName(), AppNamespace: app.GetNamespace(), SHA256: hex.EncodeToString(h[:]),
		Images: []branchImage{{Name: ch.Image, Alias: ch.Alias, OldTag: ch.OldTag, NewTag: ch.NewTag}}}); err != nil {
		return "", fmt.Errorf("annotation %s: %w", AnnotationGitBranch, err)
	}
	name := b.String()
	if len(name) > 255 {
		name = name[:255]
	}
	return name, nil
}

// resolve turns a target path into a repository-relative one: "/x" from the root, else from
// dir. It may not leave the repository.
func resolve(dir, p string) (string, error) {
	var full string
	if strings.HasPrefix(p, "/") {
		full = path.Clean(p)
	} else {
		full = path.Clean("/" + dir + "/" + p)
	}
	if strings.HasPrefix(full, "/..") {
		return "", fmt.Errorf("path %q leaves the repository", p)
	}
	return strings.TrimPrefix(full, "/"), nil
}

// maxManifestBytes bounds the files searched for the Application's manifest.
const maxManifestBytes = 1 << 20

// editTarget edits the target file in the work tree root and reports what it did.
func (c *controller) editTarget(root string, loc gitLocation, app *unstructured.Unstructured, d decision) (file, old string, changed bool, err error) {
	wb := d.writeBack
	switch wb.target {
	case targetHelmValues:
		if file, err = resolve(loc.dir, wb.path); err != nil {
			return "", "", false, err
		}
		if err := noSymlinks(root, file); err != nil {
			return file, "", false, err
		}
		src, err := os.ReadFile(filepath.Join(root, file))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return file, "", false, err
		}
		out, old, err := setYAMLKey(src, wb.key, d.target)
		if err != nil {
			return file, "", false, fmt.Errorf("%s: %w", file, err)
		}
		return file, old, !bytes.Equal(out, src), writeFile(root, file, out)
	case targetKustomization:
		kdir, err := resolve(loc.dir, wb.path)
		if err != nil {
			return "", "", false, err
		}
		for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
			file = path.Join(kdir, n)
			if err := noSymlinks(root, file); err != nil {
				return file, "", false, err
			}
			src, err := os.ReadFile(filepath.Join(root, file))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return file, "", false, err
			}
			out, old, err := editKustomization(src, app.GetNamespace(), app.GetName(), d.source.jsonPath(), d.target)
			if err != nil {
				return file, "", false, fmt.Errorf("%s: %w", file, err)
			}
			return file, old, !bytes.Equal(out, src), writeFile(root, file, out)
		}
		return "", "", false, fmt.Errorf("no kustomization.yaml in %q", "/"+kdir)
	}
	// The Application's own manifest: the one YAML document under dir defining it.
	var found []string
	var out []byte
	if err := noSymlinks(root, loc.dir); err != nil {
		return "", "", false, err
	}
	err = filepath.WalkDir(filepath.Join(root, filepath.FromSlash(loc.dir)), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if e.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := path.Ext(e.Name()); (ext != ".yaml" && ext != ".yml") || !e.Type().IsRegular() {
			return nil // symbolic links are never followed: they could point out of the clone
		}
		if info, err := e.Info(); err != nil || info.Size() > maxManifestBytes {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		o, was, ok, err := editApplicationManifest(src, app.GetNamespace(), app.GetName(), d.source.repository, d.target)
		if !ok {
			return nil // not this Application's file (or not YAML: a Helm template, say)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.ToSlash(rel), err)
		}
		found = append(found, filepath.ToSlash(rel))
		if len(found) == 1 {
			file, old, out, changed = found[0], was, o, !bytes.Equal(o, src)
		}
		return nil
	})
	if err != nil {
		return "", "", false, err
	}
	switch len(found) {
	case 0:
		return "", "", false, fmt.Errorf("no manifest of Application %s (kind Application, metadata.name %s) under %q; for a templated parent use %s: helmvalues:<file> or kustomization", app.GetName(), app.GetName(), "/"+loc.dir, AnnotationWriteBackTarget)
	case 1:
		return file, old, changed, writeFile(root, file, out)
	}
	sort.Strings(found)
	return "", "", false, fmt.Errorf("Application %s is defined in %d files (%s): name one with git-repository and a narrower parent path", app.GetName(), len(found), strings.Join(found, ", "))
}

// noSymlinks refuses a repository-relative path one of whose elements is a symbolic link: the
// repository's content must not make the updater read or write outside its clone.
func noSymlinks(root, rel string) error {
	p := root
	for _, el := range strings.Split(rel, "/") {
		if el == "" {
			continue
		}
		p = filepath.Join(p, el)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link in the repository: refused", rel)
		}
	}
	return nil
}

func writeFile(root, file string, data []byte) error {
	p := filepath.Join(root, filepath.FromSlash(file))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}
