package imageupdater

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// webhookKind is one sender's payload format: how its secret is checked and how its body names
// the pushed repository and tag. Kinds are chosen with ?type= or the X-Registry-Type header
// (argocd-image-updater's names); without either, the body is read as distribution's envelope or
// Strata's {"repository", "tag"}.
type webhookKind struct {
	// authorized reports whether the request carries secret the way this sender sends it.
	authorized func(r *http.Request, body []byte, secret string) bool
	// parse returns the pushes the body names; a body that is an event of no interest (a
	// delete, a ping) yields no push and no error.
	parse func(r *http.Request, body []byte) ([]pushEvent, error)
}

var webhookKinds = map[string]webhookKind{
	"":             {authorized: bearerSecret, parse: parseDistributionOrGeneric},
	"distribution": {authorized: bearerSecret, parse: parseDistributionOrGeneric},
	"docker.io":    {authorized: querySecret, parse: parseDockerHub},
	"ghcr.io":      {authorized: githubSignature, parse: parseGHCR},
	"harbor":       {authorized: authorizationSecret, parse: parseHarbor},
	"quay.io":      {authorized: querySecret, parse: parseQuay},
	"acr":          {authorized: authorizationSecret, parse: parseACR},
	"cloudevents":  {authorized: cloudEventsSecret, parse: parseCloudEvents},
}

func webhookKindNames() string {
	var names []string
	for n := range webhookKinds {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// secretEqual compares in constant time (both sides hashed first, so the length leaks nothing).
func secretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return got != "" && subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// bearerSecret: "Authorization: Bearer S" or "X-Strata-Webhook-Secret: S" (distribution's
// notification endpoints send configured headers).
func bearerSecret(r *http.Request, _ []byte, secret string) bool {
	if got := r.Header.Get("X-Strata-Webhook-Secret"); got != "" {
		return secretEqual(got, secret)
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && secretEqual(got, secret)
}

// querySecret: ?secret=S in the URL (Docker Hub and Quay cannot send headers).
func querySecret(r *http.Request, _ []byte, secret string) bool {
	return secretEqual(r.URL.Query().Get("secret"), secret)
}

// authorizationSecret: "Authorization: S" as Harbor's "Auth Header" and ACR's custom headers send
// it; "Bearer S" is accepted too.
func authorizationSecret(r *http.Request, _ []byte, secret string) bool {
	got := r.Header.Get("Authorization")
	if b, ok := strings.CutPrefix(got, "Bearer "); ok && secretEqual(b, secret) {
		return true
	}
	return secretEqual(got, secret)
}

// cloudEventsSecret: ?secret=S or "X-Webhook-Secret: S".
func cloudEventsSecret(r *http.Request, _ []byte, secret string) bool {
	if got := r.URL.Query().Get("secret"); got != "" {
		return secretEqual(got, secret)
	}
	return secretEqual(r.Header.Get("X-Webhook-Secret"), secret)
}

// githubSignature: "X-Hub-Signature-256: sha256=HEX" = HMAC-SHA256 of the body keyed with S.
func githubSignature(r *http.Request, body []byte, secret string) bool {
	sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
	if !ok || secret == "" {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// decode unmarshals a JSON object, naming the sender in the error.
func decode(kind string, body []byte, v any) error {
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s webhook body: %w", kind, err)
	}
	return nil
}

// joinRepository is HOST/PATH, or PATH when the host is unknown.
func joinRepository(host, path string) string {
	path = strings.Trim(path, "/")
	if host == "" {
		return path
	}
	return host + "/" + path
}

// hostOfURL is the host of "https://h/p" or "h/p".
func hostOfURL(s string) string {
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Host
}

// parseDistributionOrGeneric reads distribution's notification envelope or a simple
// {"repository", "tag"}.
func parseDistributionOrGeneric(_ *http.Request, body []byte) ([]pushEvent, error) {
	return parseWebhook(body)
}

// parseDockerHub: repository.repo_name (or namespace/name) and push_data.tag; the registry is
// docker.io.
func parseDockerHub(_ *http.Request, body []byte) ([]pushEvent, error) {
	var p struct {
		Repository struct {
			Name, Namespace string
			RepoName        string `json:"repo_name"`
		} `json:"repository"`
		PushData struct {
			Tag string `json:"tag"`
		} `json:"push_data"`
	}
	if err := decode("docker.io", body, &p); err != nil {
		return nil, err
	}
	repo := p.Repository.RepoName
	if repo == "" && p.Repository.Name != "" {
		repo = joinRepository(p.Repository.Namespace, p.Repository.Name)
	}
	if repo == "" {
		return nil, fmt.Errorf("docker.io webhook body: no repository.repo_name")
	}
	if p.PushData.Tag == "" {
		return nil, fmt.Errorf("docker.io webhook body: no push_data.tag")
	}
	return []pushEvent{{repository: "docker.io/" + repo, tag: p.PushData.Tag}}, nil
}

// parseGHCR: a GitHub "package" event with action "published" of a container package:
// package.owner.login/package.name on ghcr.io, tag from
// package.package_version.container_metadata.tag.name (else .name, .version). A "ping" and other
// actions or events are ignored.
func parseGHCR(r *http.Request, body []byte) ([]pushEvent, error) {
	if ev := r.Header.Get("X-GitHub-Event"); ev != "package" {
		if ev == "" {
			return nil, fmt.Errorf("ghcr.io webhook: no X-GitHub-Event header")
		}
		return nil, nil
	}
	var p struct {
		Action  string `json:"action"`
		Package struct {
			Name        string `json:"name"`
			PackageType string `json:"package_type"`
			Owner       struct {
				Login string `json:"login"`
			} `json:"owner"`
			PackageVersion struct {
				Name, Version     string
				ContainerMetadata struct {
					Tag struct {
						Name string `json:"name"`
					} `json:"tag"`
				} `json:"container_metadata"`
			} `json:"package_version"`
		} `json:"package"`
	}
	if err := decode("ghcr.io", body, &p); err != nil {
		return nil, err
	}
	if p.Action != "published" || !strings.EqualFold(p.Package.PackageType, "container") {
		return nil, nil
	}
	if p.Package.Name == "" || p.Package.Owner.Login == "" {
		return nil, fmt.Errorf("ghcr.io webhook body: no package.name or package.owner.login")
	}
	v := p.Package.PackageVersion
	tag := v.ContainerMetadata.Tag.Name
	if tag == "" {
		tag = v.Name
	}
	if tag == "" {
		tag = v.Version
	}
	if tag == "" {
		return nil, fmt.Errorf("ghcr.io webhook body: no package.package_version.container_metadata.tag.name")
	}
	repo := strings.ToLower(p.Package.Owner.Login + "/" + p.Package.Name)
	return []pushEvent{{repository: "ghcr.io/" + repo, tag: tag}}, nil
}

// parseHarbor: type PUSH_ARTIFACT; event_data.repository.repo_full_name (or namespace/name);
// each event_data.resources[] tag, the registry host from its resource_url.
func parseHarbor(_ *http.Request, body []byte) ([]pushEvent, error) {
	var p struct {
		Type      string `json:"type"`
		EventData struct {
			Resources []struct {
				Tag         string `json:"tag"`
				ResourceURL string `json:"resource_url"`
			} `json:"resources"`
			Repository struct {
				Name, Namespace string
				RepoFullName    string `json:"repo_full_name"`
			} `json:"repository"`
		} `json:"event_data"`
	}
	if err := decode("harbor", body, &p); err != nil {
		return nil, err
	}
	if p.Type == "" {
		return nil, fmt.Errorf("harbor webhook body: no type")
	}
	if p.Type != "PUSH_ARTIFACT" {
		return nil, nil
	}
	d := p.EventData
	repo := d.Repository.RepoFullName
	if repo == "" && d.Repository.Name != "" {
		repo = joinRepository(d.Repository.Namespace, d.Repository.Name)
	}
	if repo == "" {
		return nil, fmt.Errorf("harbor webhook body: no event_data.repository.repo_full_name")
	}
	if len(d.Resources) == 0 {
		return nil, fmt.Errorf("harbor webhook body: no event_data.resources")
	}
	var out []pushEvent
	for _, res := range d.Resources {
		out = append(out, pushEvent{repository: joinRepository(hostOfURL(res.ResourceURL), repo), tag: res.Tag})
	}
	return out, nil
}

// parseQuay: repository (NAMESPACE/NAME), one push per updated_tags[], the registry host from
// docker_url (default quay.io).
func parseQuay(_ *http.Request, body []byte) ([]pushEvent, error) {
	var p struct {
		Repository  string   `json:"repository"`
		DockerURL   string   `json:"docker_url"`
		UpdatedTags []string `json:"updated_tags"`
	}
	if err := decode("quay.io", body, &p); err != nil {
		return nil, err
	}
	if p.Repository == "" {
		return nil, fmt.Errorf("quay.io webhook body: no repository")
	}
	if len(p.UpdatedTags) == 0 {
		return nil, fmt.Errorf("quay.io webhook body: no updated_tags")
	}
	host := hostOfURL(p.DockerURL)
	if host == "" {
		host = "quay.io"
	}
	var out []pushEvent
	for _, t := range p.UpdatedTags {
		out = append(out, pushEvent{repository: joinRepository(host, p.Repository), tag: t})
	}
	return out, nil
}

// parseACR: action "push", target.repository, target.tag (empty for a digest-only push),
// request.host.
func parseACR(_ *http.Request, body []byte) ([]pushEvent, error) {
	var p struct {
		Action string `json:"action"`
		Target struct {
			Repository, Tag string
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
	}
	if err := decode("acr", body, &p); err != nil {
		return nil, err
	}
	if p.Action == "" {
		return nil, fmt.Errorf("acr webhook body: no action")
	}
	if p.Action != "push" {
		return nil, nil
	}
	if p.Target.Repository == "" {
		return nil, fmt.Errorf("acr webhook body: no target.repository")
	}
	return []pushEvent{{repository: joinRepository(p.Request.Host, p.Target.Repository), tag: p.Target.Tag}}, nil
}

// parseCloudEvents: a CloudEvents 1.0 JSON event (structured mode). Repository and tag come from
// subject "REPO:TAG", overridden by data.repositoryName|repository and data.imageTag|tag. The
// registry: for com.amazon.ecr.* types ACCOUNT.dkr.ecr.REGION.amazonaws.com from source
// "urn:aws:ecr:REGION:ACCOUNT:…" (data.registryId overrides ACCOUNT); for other types whose name
// has "image" or "container", data.registryUrl|registry or the host of source.
func parseCloudEvents(_ *http.Request, body []byte) ([]pushEvent, error) {
	var p struct {
		SpecVersion string         `json:"specversion"`
		Type        string         `json:"type"`
		Source      string         `json:"source"`
		Subject     string         `json:"subject"`
		Data        map[string]any `json:"data"`
	}
	if err := decode("cloudevents", body, &p); err != nil {
		return nil, err
	}
	if p.SpecVersion == "" || p.Type == "" {
		return nil, fmt.Errorf("cloudevents webhook body: no specversion or type")
	}
	str := func(keys ...string) string {
		for _, k := range keys {
			if s, ok := p.Data[k].(string); ok && s != "" {
				return s
			}
		}
		return ""
	}
	repo, tag, _ := strings.Cut(p.Subject, ":")
	if s := str("repositoryName", "repository"); s != "" {
		repo = s
	}
	if s := str("imageTag", "tag"); s != "" {
		tag = s
	}
	var host string
	switch {
	case strings.HasPrefix(p.Type, "com.amazon.ecr."):
		parts := strings.Split(p.Source, ":")
		if len(parts) >= 5 && (strings.HasPrefix(p.Source, "urn:aws:ecr:") || strings.HasPrefix(p.Source, "arn:aws:ecr:")) {
			account := parts[4]
			if s := str("registryId"); s != "" {
				account = s
			}
			host = account + ".dkr.ecr." + parts[3] + ".amazonaws.com"
		}
	case strings.Contains(p.Type, "image") || strings.Contains(p.Type, "container"):
		host = str("registryUrl", "registry")
		if host == "" && strings.Contains(p.Source, ".") {
			host = hostOfURL(p.Source)
		}
		host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
	default:
		return nil, nil
	}
	switch {
	case repo == "":
		return nil, fmt.Errorf("cloudevents webhook body: no repository (subject REPO:TAG or data.repositoryName)")
	case tag == "":
		return nil, fmt.Errorf("cloudevents webhook body: no tag (subject REPO:TAG or data.imageTag)")
	case host == "":
		return nil, fmt.Errorf("cloudevents webhook body: no registry (source or data.registryUrl)")
	}
	return []pushEvent{{repository: joinRepository(host, repo), tag: tag}}, nil
}
