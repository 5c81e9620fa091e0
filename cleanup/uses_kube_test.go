package cleanup

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"strata.dev/strata/internal/testing/testenv"
)

// TestClusterUsesEveryWorkloadKind creates one object of each workload kind on the test
// kube-apiserver, each with an init container and a container running different stage images:
// ClusterUses reports every one of those images, for the object using it. A Pod also gets an
// ephemeral container, and its status an image ID by digest, as a kubelet reports it.
func TestClusterUsesEveryWorkloadKind(t *testing.T) {
	kube := testenv.Kube(t)
	kubeconfig := testenv.Kubeconfig(t)
	ctx := context.Background()
	ns := testenv.UniqueName(t, "kinds")
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// No controller manager creates the default service account that admission looks up.
	if _, err := kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	repo := "127.0.0.1:5000/" + ns + "/stages"
	ms := time.Now().UnixMilli()
	stageRef := func() string { return fmt.Sprintf("%s:%s-%d", repo, randomDigest(t), ms) }
	tagOf := func(ref string) string { return ref[strings.LastIndex(ref, ":")+1:] }
	// want: kind/name -> the stage tags (or manifest digests) its containers use.
	want := map[string][]string{}
	spec := func(key string, restart corev1.RestartPolicy) corev1.PodSpec {
		init, main := stageRef(), stageRef()
		want[key] = append(want[key], tagOf(init), tagOf(main))
		return corev1.PodSpec{
			RestartPolicy:  restart,
			InitContainers: []corev1.Container{{Name: "init", Image: init}},
			Containers:     []corev1.Container{{Name: "main", Image: main}},
		}
	}
	labels := func(app string) map[string]string { return map[string]string{"app": app} }
	tmpl := func(key, app string, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels(app)}, Spec: spec(key, restart)}
	}
	sel := func(app string) *metav1.LabelSelector { return &metav1.LabelSelector{MatchLabels: labels(app)} }
	meta := metav1.ObjectMeta{Namespace: ns, Name: "w"}

	pod, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: meta, Spec: spec("Pod", corev1.RestartPolicyAlways)}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Pod: %v", err)
	}
	// An ephemeral container (kubectl debug) and the status of a started container.
	debug := stageRef()
	want["Pod"] = append(want["Pod"], tagOf(debug))
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug", Image: debug}}}
	if pod, err = kube.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "w", pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("add an ephemeral container: %v", err)
	}
	running := "sha256:" + randomDigest(t) + "00000000"
	want["Pod"] = append(want["Pod"], running)
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main", Image: "busybox", ImageID: "docker-pullable://" + repo + "@" + running}}
	if _, err = kube.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("set the Pod's status: %v", err)
	}
	for kind, create := range map[string]func() error{
		"Deployment": func() error {
			_, err := kube.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: meta, Spec: appsv1.DeploymentSpec{
				Selector: sel("d"), Template: tmpl("Deployment", "d", corev1.RestartPolicyAlways)}}, metav1.CreateOptions{})
			return err
		},
		"StatefulSet": func() error {
			_, err := kube.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: meta, Spec: appsv1.StatefulSetSpec{
				ServiceName: "w", Selector: sel("s"), Template: tmpl("StatefulSet", "s", corev1.RestartPolicyAlways)}}, metav1.CreateOptions{})
			return err
		},
		"DaemonSet": func() error {
			_, err := kube.AppsV1().DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: meta, Spec: appsv1.DaemonSetSpec{
				Selector: sel("ds"), Template: tmpl("DaemonSet", "ds", corev1.RestartPolicyAlways)}}, metav1.CreateOptions{})
			return err
		},
		"ReplicaSet": func() error {
			_, err := kube.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{ObjectMeta: meta, Spec: appsv1.ReplicaSetSpec{
				Selector: sel("rs"), Template: tmpl("ReplicaSet", "rs", corev1.RestartPolicyAlways)}}, metav1.CreateOptions{})
			return err
		},
		"Job": func() error {
			_, err := kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{
				Template: tmpl("Job", "j", corev1.RestartPolicyNever)}}, metav1.CreateOptions{})
			return err
		},
		"CronJob": func() error {
			_, err := kube.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{ObjectMeta: meta, Spec: batchv1.CronJobSpec{
				Schedule: "0 0 * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl("CronJob", "cj", corev1.RestartPolicyOnFailure)}}}}, metav1.CreateOptions{})
			return err
		},
	} {
		if err := create(); err != nil {
			t.Fatalf("create %s: %v", kind, err)
		}
	}
	if len(want) != 7 {
		t.Fatalf("created %d kinds, want 7", len(want))
	}

	uses, err := ClusterUses(ctx, kubeconfig, []string{""})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[string]bool{} // image -> reasons
	for _, u := range uses {
		if !strings.Contains(u.Why, " "+ns+"/") {
			continue // another test's workload
		}
		key := u.Tag + u.ManifestDigest
		if got[key] == nil {
			got[key] = map[string]bool{}
		}
		got[key][u.Why] = true
	}
	n := 0
	for kind, images := range want {
		why := kind + " " + ns + "/w uses it (kube context current)"
		for _, im := range images {
			n++
			if !got[im][why] {
				t.Errorf("%s's image %s is not reported in use by it; reported for %v", kind, im, got[im])
			}
		}
	}
	if len(got) != n {
		t.Errorf("%d images reported in namespace %s, want exactly the %d used", len(got), ns, n)
	}
}
