package main

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/tunmux/tunmux/internal/testnet"
)

// manifests are the objects of deploy/kubernetes, each decoded strictly
// into its k8s.io/api type.
type manifests struct {
	namespace *corev1.Namespace
	quota     *corev1.ResourceQuota
	account   *corev1.ServiceAccount
	configMap *corev1.ConfigMap
	daemonSet *appsv1.DaemonSet
	files     []string // the manifests' file names
	kustomize kustomization
}

// kustomization is what deploy/kubernetes/kustomization.yaml may hold.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// readManifests decodes every file of deploy/kubernetes: a field the
// type does not have, a key given twice or a kind not expected fails.
func readManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testnet.TopDir(), "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	var m manifests
	// Each kind expected, and the field its object goes to.
	kinds := map[string]func() any{
		"v1 Namespace":      func() any { m.namespace = &corev1.Namespace{}; return m.namespace },
		"v1 ResourceQuota":  func() any { m.quota = &corev1.ResourceQuota{}; return m.quota },
		"v1 ServiceAccount": func() any { m.account = &corev1.ServiceAccount{}; return m.account },
		"v1 ConfigMap":      func() any { m.configMap = &corev1.ConfigMap{}; return m.configMap },
		"apps/v1 DaemonSet": func() any { m.daemonSet = &appsv1.DaemonSet{}; return m.daemonSet },
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(f) == "kustomization.yaml" {
			if err := yaml.UnmarshalStrict(data, &m.kustomize); err != nil {
				t.Errorf("kustomization.yaml: %v", err)
			}
			continue
		}
		m.files = append(m.files, filepath.Base(f))
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			into, ok := kinds[tm.APIVersion+" "+tm.Kind]
			if !ok {
				t.Fatalf("%s document %d: unexpected %s %s", f, i, tm.APIVersion, tm.Kind)
			}
			obj := into()
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Errorf("%s document %d: %v", filepath.Base(f), i, err)
			}
		}
	}
	if m.namespace == nil || m.account == nil || m.configMap == nil || m.daemonSet == nil {
		t.Fatalf("deploy/kubernetes lacks an object: %+v", m)
	}
	return m
}

// agent is the DaemonSet's tunmux container and what its args say.
type agent struct {
	c           corev1.Container
	file        string // -f
	metricsPort int    // --metrics-addr's
}

func agentOf(t *testing.T, ds *appsv1.DaemonSet) agent {
	t.Helper()
	cs := ds.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("%d containers, want the agent alone", len(cs))
	}
	a := agent{c: cs[0]}
	args := a.c.Args
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-f", "--file":
			a.file = args[i+1]
		case "--metrics-addr":
			_, port, err := net.SplitHostPort(args[i+1])
			if err != nil {
				t.Fatalf("--metrics-addr %s: %v", args[i+1], err)
			}
			fmt.Sscan(port, &a.metricsPort)
		}
	}
	return a
}

// port resolves a probe's port (a number or the name of a container port).
func (a agent) port(p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range a.c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return -1
}

func TestKubernetesManifests(t *testing.T) {
	m := readManifests(t)
	ns := m.namespace.Name
	for what, got := range map[string]string{"ServiceAccount": m.account.Namespace, "ConfigMap": m.configMap.Namespace, "DaemonSet": m.daemonSet.Namespace} {
		if got != ns {
			t.Errorf("the %s is in namespace %q, the Namespace is %q", what, got, ns)
		}
	}
	// kubectl apply -k: every manifest, and the image it names.
	k := m.kustomize
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" || strings.Join(k.Resources, " ") != strings.Join(m.files, " ") {
		t.Errorf("kustomization.yaml: %+v, want a Kustomization of %v", k, m.files)
	}
	ds := m.daemonSet
	spec := ds.Spec.Template.Spec
	if len(k.Images) != 1 || k.Images[0].Name != spec.Containers[0].Image || k.Images[0].NewName == "" {
		t.Errorf("kustomization.yaml images %+v: want one, naming the container's image %q", k.Images, spec.Containers[0].Image)
	}
	// A critical priority class needs a quota for it in the namespace
	// (clusters that limit those classes admit them only so).
	if pc := spec.PriorityClassName; strings.HasPrefix(pc, "system-") {
		ok := m.quota != nil && m.quota.Namespace == ns && m.quota.Spec.ScopeSelector != nil
		if ok {
			ok = false
			for _, e := range m.quota.Spec.ScopeSelector.MatchExpressions {
				ok = ok || e.ScopeName == corev1.ResourceQuotaScopePriorityClass && e.Operator == corev1.ScopeSelectorOpIn && slices.Contains(e.Values, pc)
			}
		}
		if !ok {
			t.Errorf("priorityClassName %s without a ResourceQuota scoped to it in namespace %s", pc, ns)
		}
	}
	if spec.ServiceAccountName != m.account.Name {
		t.Errorf("serviceAccountName %q, the ServiceAccount is %q", spec.ServiceAccountName, m.account.Name)
	}
	if sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector); err != nil || sel.Empty() {
		t.Errorf("selector: %v", err)
	} else if !sel.Matches(labelSet(ds.Spec.Template.Labels)) {
		t.Errorf("the selector %s does not match the pod template's labels %v", sel, ds.Spec.Template.Labels)
	}
	if !spec.HostNetwork {
		t.Errorf("the agent needs hostNetwork: the dataplanes serve the node's interfaces")
	}
	if s := ds.Spec.UpdateStrategy; s.Type != appsv1.RollingUpdateDaemonSetStrategyType || s.RollingUpdate == nil {
		t.Errorf("update strategy %+v, want RollingUpdate", s)
	}

	a := agentOf(t, ds)
	// The args are a tunmux command line: the agent.
	if path, err := resolveExample(a.c.Args); err != nil || path != "tunmux apply" {
		t.Errorf("args %q: %s %v", a.c.Args, path, err)
	}
	if !slices.Contains(a.c.Args, "--watch") || a.file == "" || a.metricsPort == 0 {
		t.Errorf("args %q: want apply -f FILE --watch --metrics-addr :PORT", a.c.Args)
	}
	// The probes ask the paths the agent serves, on its port.
	for _, p := range []struct {
		what  string
		probe *corev1.Probe
		path  string
	}{{"liveness", a.c.LivenessProbe, "/healthz"}, {"readiness", a.c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", p.what)
			continue
		}
		if got := p.probe.HTTPGet.Path; got != p.path {
			t.Errorf("%s probe path %s, want %s", p.what, got, p.path)
		}
		if got := a.port(p.probe.HTTPGet.Port); got != a.metricsPort {
			t.Errorf("%s probe port %v (%d), the agent serves on %d", p.what, p.probe.HTTPGet.Port.String(), got, a.metricsPort)
		}
	}
	ann := ds.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != fmt.Sprint(a.metricsPort) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("Prometheus annotations %v, want scrape of :%d/metrics", ann, a.metricsPort)
	}
	// The node's name and address from the downward API.
	env := map[string]string{}
	for _, e := range a.c.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["NODE_NAME"] != "spec.nodeName" || env["NODE_IP"] != "status.hostIP" {
		t.Errorf("env from the downward API: %v", env)
	}
	// Volumes: the fleet file from the ConfigMap, the host's bpffs with
	// bidirectional propagation (privileged, as Kubernetes requires), and
	// the host's /run/netns.
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, vm := range a.c.VolumeMounts {
		mounts[vm.MountPath] = vm
		if _, ok := volumes[vm.Name]; !ok {
			t.Errorf("mount %s names no volume %s", vm.MountPath, vm.Name)
		}
	}
	hostPath := func(mountPath string) (*corev1.VolumeMount, *corev1.HostPathVolumeSource) {
		vm, ok := mounts[mountPath]
		if !ok {
			return nil, nil
		}
		return &vm, volumes[vm.Name].HostPath
	}
	if vm, hp := hostPath("/sys/fs/bpf"); hp == nil || hp.Path != "/sys/fs/bpf" || vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("/sys/fs/bpf: want the host's, mounted with Bidirectional propagation: %+v %+v", vm, hp)
	}
	if sc := a.c.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Errorf("Bidirectional propagation needs a privileged container")
	}
	if vm, hp := hostPath("/run/netns"); hp == nil || hp.Path != "/run/netns" || vm.MountPropagation == nil {
		t.Errorf("/run/netns: want the host's, with mount propagation: %+v %+v", vm, hp)
	}
	fleet, ok := mounts[filepath.Dir(a.file)]
	if !ok || volumes[fleet.Name].ConfigMap == nil || volumes[fleet.Name].ConfigMap.Name != m.configMap.Name {
		t.Fatalf("-f %s: its folder is not the ConfigMap %s mounted", a.file, m.configMap.Name)
	}
	if _, ok := m.configMap.Data[filepath.Base(a.file)]; !ok {
		t.Errorf("-f %s: the ConfigMap has no key %s", a.file, filepath.Base(a.file))
	}
}

type labelSet map[string]string

func (l labelSet) Has(k string) bool   { _, ok := l[k]; return ok }
func (l labelSet) Get(k string) string { return l[k] }
func (l labelSet) Lookup(k string) (string, bool) {
	v, ok := l[k]
	return v, ok
}

// The DaemonSet's agent, run as its container would be (its args, its
// environment, the ConfigMap laid out as kubelet mounts it) on node-a of
// the example fleet file: its probes answer, it applies the file, and
// SIGTERM ends it with the dataplane left running.
func TestKubernetesAgentRuns(t *testing.T) {
	m := readManifests(t)
	a := agentOf(t, m.daemonSet)
	c := newCLI(t)
	t.Cleanup(func() { testnet.Tunmux(bin, "--bpffs", c.root, "unload", "route", "--all") })
	c.ns.Run(t, "ip", "addr", "add", "192.168.61.11/24", "dev", "ul0")
	c.ns.Run(t, "ip", "link", "set", "ul0", "up")
	cm := testnet.NewConfigMap(t, m.configMap.Data)
	args := slices.Clone(a.c.Args)
	for i := range args {
		switch {
		case args[i] == a.file:
			args[i] = cm.Path(filepath.Base(a.file))
		case i > 0 && args[i-1] == "--metrics-addr":
			args[i] = "127.0.0.1:0"
		}
	}
	agent := testnet.StartAgent(t, bin, []string{"NODE_NAME=node-a", "NODE_IP=192.168.61.11"}, c.args(append([]string{"-o", "json"}, args...))...)
	base := "http://" + agent.MetricsAddr()
	if first := agent.WaitLine("the agent's first apply", func(testnet.AgentLine) bool { return true }); !first.OK() || first.Result.Fleet == nil || first.Result.Fleet.Node != "node-a" {
		t.Fatalf("the agent's first apply: %+v\n%s", first, agent.Stderr())
	}
	for _, probe := range []*corev1.Probe{a.c.LivenessProbe, a.c.ReadinessProbe} {
		if code, body := httpGet(t, base+probe.HTTPGet.Path); code != 200 {
			t.Errorf("%s: %d %s", probe.HTTPGet.Path, code, body)
		}
	}
	if out := c.ns.Run(t, "ip", "-o", "addr", "show", "dev", "tmx-vxlan"); !strings.Contains(out, "10.250.1.1/32") {
		t.Errorf("tmx-vxlan: %s", out)
	}
	if out := c.ns.Run(t, "ip", "route", "show", "dev", "tmx-rt"); !strings.Contains(out, "10.250.2.0/24") || !strings.Contains(out, "10.250.3.0/24") {
		t.Errorf("routes through tmx-rt: %s", out)
	}

	grace := time.Duration(*m.daemonSet.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if err := agent.Stop(syscall.SIGTERM, grace); err != nil {
		t.Errorf("the agent after SIGTERM: %v", err)
	}
	if state := c.linkState("route", "tmx-rt"); state != "attached" {
		t.Errorf("the route program after the agent stopped: %s", state)
	}
}

// The Dockerfile's image: its build line makes a static binary (it runs
// from scratch, with no loader), its entrypoint is that binary, its
// default command is the agent.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testnet.TopDir(), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	var froms []string
	var build, entrypoint, command string
	guarded := false
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms = append(froms, line)
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			build = strings.TrimPrefix(line, "RUN ")
		case strings.HasPrefix(line, `RUN test -n "${COMMIT_TIME}"`):
			guarded = build == "" // before the build
		case strings.HasPrefix(line, "ENTRYPOINT "):
			entrypoint = strings.TrimPrefix(line, "ENTRYPOINT ")
		case strings.HasPrefix(line, "CMD "):
			command = strings.TrimPrefix(line, "CMD ")
		}
	}
	if !guarded {
		t.Errorf("the build stage does not refuse an empty COMMIT_TIME before it builds (downgrades would go unseen)")
	}
	if len(froms) != 2 || froms[1] != "FROM scratch" {
		t.Errorf("stages %q: want a build stage, then scratch", froms)
	}
	var ep, cmdArgs []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) != 1 || ep[0] != "/tunmux" {
		t.Errorf("ENTRYPOINT %s: want [\"/tunmux\"]", entrypoint)
	}
	if err := json.Unmarshal([]byte(command), &cmdArgs); err != nil {
		t.Fatalf("CMD %s: %v", command, err)
	}
	if path, err := resolveExample(cmdArgs); err != nil || path != "tunmux apply" {
		t.Errorf("CMD %q: %s %v", cmdArgs, path, err)
	}
	// The build line, as the build stage runs it (ARGs as make image
	// passes them), into a temporary folder.
	goBuild, _, _ := strings.Cut(build, "&&")
	out := t.TempDir()
	goBuild = strings.NewReplacer("/out/", out+"/", "${VERSION}", "test", "${COMMIT}", "abc", "${COMMIT_TIME}", "1764547200").Replace(goBuild)
	sh := exec.Command("sh", "-c", goBuild)
	sh.Dir = testnet.TopDir()
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", goBuild, err, b)
	}
	exe, err := elf.Open(filepath.Join(out, "tunmux"))
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	for _, p := range exe.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the image's binary needs a dynamic loader, which scratch lacks")
		}
	}
	if b, err := exec.Command(filepath.Join(out, "tunmux"), "version").CombinedOutput(); err != nil || !strings.Contains(string(b), "test") {
		t.Errorf("tunmux version: %v\n%s", err, b)
	}
}

// The image's entrypoint is tunmux itself, with no script to mount the
// bpffs: run as a container runs it (its own mount and PID namespaces,
// /sys/fs/bpf not a bpffs there), the agent's first write mounts one.
func TestEntrypointMountsBPFFS(t *testing.T) {
	testnet.RequireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare (util-linux) is needed: %v", err)
	}
	root := "/sys/fs/bpf/" + testnet.Unique("tmxt-entry")
	// && throughout: nothing is written unless /sys/fs/bpf was unmounted
	// in the new namespace (the host's stays as it is).
	script := fmt.Sprintf(`umount /sys/fs/bpf && [ "$(stat -f -c %%T /sys/fs/bpf)" != bpf_fs ] && %s --bpffs %s load xconnect && stat -f -c %%T /sys/fs/bpf && ls %s/xconnect`, bin, root, root)
	out, err := exec.Command("unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bpf_fs") || !strings.Contains(string(out), "prog_xconnect") {
		t.Errorf("tunmux in a namespace without a bpffs: %v\n%s", err, out)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("the namespace's pins reached the host's bpffs at %s: %v", root, err)
	}
}
