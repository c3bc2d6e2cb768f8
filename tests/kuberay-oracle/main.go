// Command kuberay-oracle prints the Pods, Services and RBAC objects that KubeRay's own exported
// builders produce for a sample RayCluster, so wasmray's pod builder can be compared with them.
//
// It only calls KubeRay's public functions (common.DefaultHeadPodTemplate, common.BuildPod, …) and
// wires them the way the operator's reconciler does; nothing of KubeRay is copied here. Inputs are
// fixed (namespace, UID, pod-name suffixes, no operator env vars) so the output is reproducible.
//
// Usage: go run . <sample.yaml>... > out.json   (one JSON document per sample, see writeGolden)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	rayv1 "github.com/ray-project/kuberay/ray-operator/apis/ray/v1"
	"github.com/ray-project/kuberay/ray-operator/controllers/ray/common"
	"github.com/ray-project/kuberay/ray-operator/controllers/ray/utils"
)

// The fixed inputs every golden is produced with; the Rust test uses the same ones.
const (
	namespace   = "default"
	clusterUID  = "00000000-0000-0000-0000-0000000000aa"
	replicaName = "replica-xxxxx" // the multi-host replica name (only used with RayMultiHostIndexing)
)

// golden is what one sample produces.
type golden struct {
	Sample          string                 `json:"sample"`
	KubeRayVersion  string                 `json:"kuberayVersion"`
	Head            corev1.Pod             `json:"head"`
	Workers         map[string]corev1.Pod  `json:"workers"`
	HeadService     *corev1.Service        `json:"headService,omitempty"`
	HeadlessService *corev1.Service        `json:"headlessService,omitempty"`
	ServeService    *corev1.Service        `json:"serveService,omitempty"`
	ServiceAccount  *corev1.ServiceAccount `json:"serviceAccount,omitempty"`
	Role            any                    `json:"role,omitempty"`
	RoleBinding     any                    `json:"roleBinding,omitempty"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: kuberay-oracle <out-dir> <sample.yaml>...")
		os.Exit(2)
	}
	outDir := os.Args[1]
	for _, path := range os.Args[2:] {
		if err := writeGolden(outDir, path); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			os.Exit(1)
		}
	}
}

// readCluster returns the first RayCluster document of a (possibly multi-document) YAML file.
func readCluster(path string) (*rayv1.RayCluster, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, doc := range bytes.Split(raw, []byte("\n---")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, err
		}
		if meta.Kind != "RayCluster" {
			continue
		}
		var cluster rayv1.RayCluster
		if err := yaml.UnmarshalStrict(doc, &cluster); err != nil {
			return nil, err
		}
		cluster.Namespace = namespace
		cluster.UID = types.UID(clusterUID)
		// What the operator does before building anything (setDefaults in the reconciler).
		if cluster.Spec.HeadGroupSpec.RayStartParams == nil {
			cluster.Spec.HeadGroupSpec.RayStartParams = map[string]string{}
		}
		for i := range cluster.Spec.WorkerGroupSpecs {
			if cluster.Spec.WorkerGroupSpecs[i].RayStartParams == nil {
				cluster.Spec.WorkerGroupSpecs[i].RayStartParams = map[string]string{}
			}
		}
		return &cluster, nil
	}
	return nil, fmt.Errorf("no RayCluster in %s", path)
}

func ownerRef(cluster *rayv1.RayCluster) []metav1.OwnerReference {
	return []metav1.OwnerReference{*metav1.NewControllerRef(cluster, rayv1.SchemeGroupVersion.WithKind("RayCluster"))}
}

func creatorType(cluster *rayv1.RayCluster) utils.CRDType {
	return utils.GetCRDType(cluster.Labels[utils.RayOriginatedFromCRDLabelKey])
}

// headPod wires the exported builders as the reconciler's buildHeadPod does.
func headPod(ctx context.Context, cluster rayv1.RayCluster) corev1.Pod {
	podName := utils.PodName(cluster.Name, rayv1.HeadNode, !utils.IsDeterministicHeadPodNameEnabled())
	fqdn := utils.GenerateFQDNServiceName(ctx, cluster, cluster.Namespace)
	headPort := common.GetHeadPort(cluster.Spec.HeadGroupSpec.RayStartParams)
	tmpl := common.DefaultHeadPodTemplate(ctx, cluster, cluster.Spec.HeadGroupSpec, podName, headPort)
	pod := common.BuildPod(ctx, tmpl, rayv1.HeadNode, cluster.Spec.HeadGroupSpec.RayStartParams, headPort,
		utils.IsAutoscalingEnabled(&cluster.Spec), creatorType(&cluster), fqdn, nil)
	pod.OwnerReferences = ownerRef(&cluster)
	return pod
}

// workerPod wires the exported builders as the reconciler's buildWorkerPod does (replica 0, host 0).
func workerPod(ctx context.Context, cluster rayv1.RayCluster, group rayv1.WorkerGroupSpec) corev1.Pod {
	podName := utils.PodName(fmt.Sprintf("%s-%s", cluster.Name, group.GroupName), rayv1.WorkerNode, true)
	fqdn := utils.GenerateFQDNServiceName(ctx, cluster, cluster.Namespace)
	headPort := common.GetHeadPort(cluster.Spec.HeadGroupSpec.RayStartParams)
	tmpl := common.DefaultWorkerPodTemplate(ctx, cluster, group, podName, fqdn, headPort, replicaName, 0, 0)
	pod := common.BuildPod(ctx, tmpl, rayv1.WorkerNode, group.RayStartParams, headPort,
		utils.IsAutoscalingEnabled(&cluster.Spec), creatorType(&cluster), fqdn, nil)
	pod.OwnerReferences = ownerRef(&cluster)
	return pod
}

func writeGolden(outDir, path string) error {
	ctx := context.Background()
	// Every object is built from its own deep copy: KubeRay's builders write into the spec's maps.
	fresh, err := readCluster(path)
	if err != nil {
		return err
	}
	g := golden{
		Sample:         filepath.Base(path),
		KubeRayVersion: utils.KUBERAY_VERSION,
		Head:           headPod(ctx, *fresh.DeepCopy()),
		Workers:        map[string]corev1.Pod{},
	}
	for i := range fresh.Spec.WorkerGroupSpecs {
		c := fresh.DeepCopy()
		g.Workers[c.Spec.WorkerGroupSpecs[i].GroupName] = workerPod(ctx, *c, c.Spec.WorkerGroupSpecs[i])
	}

	// The head Service, with the labels and annotations the reconciler passes in.
	c := fresh.DeepCopy()
	labels := map[string]string{}
	if v, ok := c.Spec.HeadGroupSpec.Template.Labels[utils.KubernetesApplicationNameLabelKey]; ok {
		labels[utils.KubernetesApplicationNameLabelKey] = v
	}
	annotations := map[string]string{}
	for k, v := range c.Spec.HeadServiceAnnotations {
		annotations[k] = v
	}
	if svc, err := common.BuildServiceForHeadPod(ctx, *c, labels, annotations); err == nil {
		svc.OwnerReferences = ownerRef(c)
		g.HeadService = svc
	} else {
		return err
	}
	multiHost := false
	for _, wg := range c.Spec.WorkerGroupSpecs {
		multiHost = multiHost || wg.NumOfHosts > 1
	}
	if multiHost {
		svc := common.BuildHeadlessServiceForRayCluster(*c)
		svc.OwnerReferences = ownerRef(c)
		g.HeadlessService = svc
	}
	if c.Annotations[utils.EnableServeServiceKey] == utils.EnableServeServiceTrue {
		if svc, err := common.BuildServeServiceForRayCluster(ctx, *c); err == nil {
			svc.OwnerReferences = ownerRef(c)
			g.ServeService = svc
		}
	}
	if utils.IsAutoscalingEnabled(&c.Spec) {
		sa, _ := common.BuildServiceAccount(c)
		sa.Name = utils.CheckName(sa.Name)
		sa.OwnerReferences = ownerRef(c)
		role, _ := common.BuildRole(c)
		role.OwnerReferences = ownerRef(c)
		rb, _ := common.BuildRoleBinding(c)
		rb.OwnerReferences = ownerRef(c)
		g.ServiceAccount, g.Role, g.RoleBinding = sa, role, rb
	}

	out, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(path), ".yaml") + ".json"
	return os.WriteFile(filepath.Join(outDir, name), append(out, '\n'), 0o644)
}
