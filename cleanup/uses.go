package cleanup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"strata.dev/strata/internal/kube"
	"strata.dev/strata/internal/registry"
	"strata.dev/strata/stages"
)

var (
	stageTagInText = regexp.MustCompile(`(?:^|[^0-9a-f])([0-9a-f]{56}-[0-9]{10,19})(?:$|[^0-9])`)
	digestInText   = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
)

// scanRefs finds stage tags and manifest digests in text (an image reference, a values file…).
func scanRefs(text string) (tags, digests []string) {
	for _, m := range stageTagInText.FindAllStringSubmatch(text, -1) {
		tags = append(tags, m[1])
	}
	digests = digestInText.FindAllString(text, -1)
	return uniq(tags), uniq(digests)
}

func usesIn(text, why string) []Use {
	tags, digests := scanRefs(text)
	var out []Use
	for _, t := range tags {
		out = append(out, Use{Tag: t, Why: why})
	}
	for _, d := range digests {
		out = append(out, Use{ManifestDigest: d, Why: why})
	}
	return out
}

const (
	helmChartLayer   = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
	bundleMetadata   = "strata-bundle.json"
	maxChartFile     = 16 << 20
	maxChartUnpacked = 128 << 20
)

// BundleUses lists every tag of a bundle repository and returns the images each bundle pins:
// the entries of its images lock (strata-bundle.json) and any stage tag or manifest digest
// written anywhere in the chart (values.yaml, templates). Tags that are not Helm charts are
// skipped; a chart that cannot be read is an error, since its images would be unknown.
func BundleUses(ctx context.Context, repo string, o registry.Options, log *slog.Logger) ([]Use, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	st, err := OpenStorage(repo, o)
	if err != nil {
		return nil, err
	}
	tags, err := st.Tags(ctx)
	if err != nil {
		return nil, fmt.Errorf("bundle repository: %w", err)
	}
	var uses []Use
	for _, tag := range tags {
		ref := st.Repo.Tag(tag)
		desc, err := remote.Get(ref, o.Remote(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: %w", ref, err)
		}
		if !desc.MediaType.IsImage() {
			log.Debug("not a chart, skipped", "bundle", ref.String(), "mediaType", desc.MediaType)
			continue
		}
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: %w", ref, err)
		}
		m, err := img.Manifest()
		if err != nil {
			return nil, fmt.Errorf("read bundle %s: %w", ref, err)
		}
		found := false
		for _, l := range m.Layers {
			if string(l.MediaType) != helmChartLayer {
				continue
			}
			found = true
			layer, err := img.LayerByDigest(l.Digest)
			if err != nil {
				return nil, fmt.Errorf("read bundle %s: %w", ref, err)
			}
			u, err := chartUses(layer.Compressed, ref.String())
			if err != nil {
				return nil, fmt.Errorf("read bundle %s: %w", ref, err)
			}
			uses = append(uses, u...)
		}
		if !found {
			log.Debug("no Helm chart layer, skipped", "bundle", ref.String())
		}
	}
	return uses, nil
}

func chartUses(open func() (io.ReadCloser, error), bundle string) ([]Use, error) {
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		return nil, fmt.Errorf("chart archive: %w", err)
	}
	tr := tar.NewReader(zr)
	var uses []Use
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("chart archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxChartFile {
			return nil, fmt.Errorf("chart file %s is %d bytes, more than the %d limit", h.Name, h.Size, maxChartFile)
		}
		if total += h.Size; total > maxChartUnpacked {
			return nil, fmt.Errorf("chart unpacks to more than %d bytes", maxChartUnpacked)
		}
		b, err := io.ReadAll(io.LimitReader(tr, maxChartFile+1))
		if err != nil {
			return nil, fmt.Errorf("chart file %s: %w", h.Name, err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "/")
		if path.Base(name) == bundleMetadata && strings.Count(name, "/") <= 1 {
			u, err := imagesLockUses(b, bundle)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			uses = append(uses, u...)
		}
		uses = append(uses, usesIn(string(b), fmt.Sprintf("bundle %s mentions it in %s", bundle, name))...)
	}
	return uses, nil
}

// imagesLockUses returns the images a bundle's images lock (strata-bundle.json) pins: each
// image's stage tag, manifest digest and any of either in its reference.
func imagesLockUses(data []byte, bundle string) ([]Use, error) {
	var meta struct {
		Images map[string]struct {
			Repo   string `json:"repo"`
			Tag    string `json:"tag"`
			Ref    string `json:"ref"`
			Digest string `json:"digest"`
		} `json:"images"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(meta.Images))
	for n := range meta.Images {
		names = append(names, n)
	}
	sort.Strings(names)
	var uses []Use
	for _, n := range names {
		im := meta.Images[n]
		why := fmt.Sprintf("bundle %s pins it (images lock: %s)", bundle, n)
		if _, ok := stages.ParseTag(im.Tag); ok {
			uses = append(uses, Use{Tag: im.Tag, Why: why})
		}
		if im.Digest != "" {
			uses = append(uses, Use{ManifestDigest: im.Digest, Why: why})
		}
		uses = append(uses, usesIn(im.Ref, why)...)
	}
	return uses, nil
}

// ClusterUses returns the images used by workloads (Pods, Deployments, StatefulSets,
// DaemonSets, Jobs, CronJobs, ReplicaSets) in every namespace of the clusters of the given
// kubeconfig contexts ("" = the current context). kubeconfig "" uses the default loading rules
// ($KUBECONFIG, ~/.kube/config).
func ClusterUses(ctx context.Context, kubeconfig string, contexts []string) ([]Use, error) {
	var uses []Use
	for _, kctx := range contexts {
		cfg, err := kube.Config(kubeconfig, kctx)
		if err != nil {
			return nil, fmt.Errorf("kube context %q: %w", kctx, err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("kube context %q: %w", kctx, err)
		}
		u, err := workloadUses(ctx, cs, kctx)
		if err != nil {
			return nil, err
		}
		uses = append(uses, u...)
	}
	return uses, nil
}

// workloadUses lists every workload kind in every namespace of one cluster and returns the
// images their Pod specs (and, for Pods, statuses) name.
func workloadUses(ctx context.Context, cs kubernetes.Interface, kctx string) ([]Use, error) {
	label := kctx
	if label == "" {
		label = "current"
	}
	kinds := []struct {
		kind, plural string
		list         listFunc
	}{
		{"Pod", "pods", lister(cs.CoreV1().Pods("").List)},
		{"Deployment", "deployments", lister(cs.AppsV1().Deployments("").List)},
		{"StatefulSet", "statefulsets", lister(cs.AppsV1().StatefulSets("").List)},
		{"DaemonSet", "daemonsets", lister(cs.AppsV1().DaemonSets("").List)},
		{"ReplicaSet", "replicasets", lister(cs.AppsV1().ReplicaSets("").List)},
		{"Job", "jobs", lister(cs.BatchV1().Jobs("").List)},
		{"CronJob", "cronjobs", lister(cs.BatchV1().CronJobs("").List)},
	}
	var uses []Use
	for _, k := range kinds {
		err := eachObject(ctx, k.list, func(obj runtime.Object) {
			m, spec, status := podSpecOf(obj)
			why := fmt.Sprintf("%s %s/%s uses it (kube context %s)", k.kind, m.Namespace, m.Name, label)
			uses = append(uses, usesIn(strings.Join(podImages(spec, status), "\n"), why)...)
		})
		if err != nil {
			return nil, fmt.Errorf("list %s in kube context %q: %w", k.plural, label, err)
		}
	}
	return uses, nil
}

// listFunc lists one kind of object in every namespace.
type listFunc func(context.Context, metav1.ListOptions) (runtime.Object, error)

// lister turns a typed client's List into a listFunc.
func lister[L runtime.Object](list func(context.Context, metav1.ListOptions) (L, error)) listFunc {
	return func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return list(ctx, o) }
}

// eachObject calls each for every object list returns, page by page, so that a large cluster is
// read in bounded pieces.
func eachObject(ctx context.Context, list listFunc, each func(runtime.Object)) error {
	for cont := ""; ; {
		l, err := list(ctx, metav1.ListOptions{Limit: 500, Continue: cont})
		if err != nil {
			return err
		}
		if err := meta.EachListItem(l, func(obj runtime.Object) error { each(obj); return nil }); err != nil {
			return err
		}
		lm, err := meta.ListAccessor(l)
		if err != nil {
			return err
		}
		if cont = lm.GetContinue(); cont == "" {
			return nil
		}
	}
}

// podSpecOf returns a workload's metadata and the Pod spec it runs; a Pod's status too.
func podSpecOf(obj runtime.Object) (metav1.ObjectMeta, *corev1.PodSpec, *corev1.PodStatus) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return o.ObjectMeta, &o.Spec, &o.Status
	case *appsv1.Deployment:
		return o.ObjectMeta, &o.Spec.Template.Spec, nil
	case *appsv1.StatefulSet:
		return o.ObjectMeta, &o.Spec.Template.Spec, nil
	case *appsv1.DaemonSet:
		return o.ObjectMeta, &o.Spec.Template.Spec, nil
	case *appsv1.ReplicaSet:
		return o.ObjectMeta, &o.Spec.Template.Spec, nil
	case *batchv1.Job:
		return o.ObjectMeta, &o.Spec.Template.Spec, nil
	case *batchv1.CronJob:
		return o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template.Spec, nil
	}
	return metav1.ObjectMeta{}, &corev1.PodSpec{}, nil
}

// podImages returns the image of every (init, ephemeral) container of spec and, from status,
// the image and image ID each container runs.
func podImages(spec *corev1.PodSpec, status *corev1.PodStatus) []string {
	var images []string
	for _, c := range spec.InitContainers {
		images = append(images, c.Image)
	}
	for _, c := range spec.Containers {
		images = append(images, c.Image)
	}
	for _, c := range spec.EphemeralContainers {
		images = append(images, c.Image)
	}
	if status != nil {
		for _, l := range [][]corev1.ContainerStatus{status.InitContainerStatuses, status.ContainerStatuses, status.EphemeralContainerStatuses} {
			for _, c := range l {
				images = append(images, c.Image, c.ImageID)
			}
		}
	}
	return images
}
