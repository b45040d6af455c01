package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/lethe-dev/lethe/config"
	"github.com/lethe-dev/lethe/connectors"
	"github.com/lethe-dev/lethe/internal/app"
	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkKustomization: kustomization.yaml applies every manifest and no
// example, and its image names are the ones the containers use.
func checkKustomization(b *bundle, p *problems) {
	k := b.kust
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		p.add("kustomization.yaml: want apiVersion kustomize.config.k8s.io/v1beta1, kind Kustomization; got %q %q", k.APIVersion, k.Kind)
	}
	for _, f := range b.yamlFiles {
		if !slices.Contains(k.Resources, f) {
			p.add("kustomization.yaml does not list %s", f)
		}
	}
	for _, r := range k.Resources {
		switch {
		case slices.Contains(b.exampleFiles, r):
			p.add("kustomization.yaml lists %s: every apply would overwrite the real Secrets with its placeholders", r)
		case !slices.Contains(b.yamlFiles, r):
			p.add("kustomization.yaml lists %s, which is not a manifest in k8s/", r)
		}
	}
	if len(b.namespaces) > 0 && b.namespaces[k.Namespace] == nil {
		p.add("kustomization.yaml: namespace %q is not the Namespace the manifests create (%v)", k.Namespace, sortedKeys(b.namespaces))
	}
	used := map[string]bool{}
	for _, w := range b.workloads() {
		for _, c := range containers(&w.template.Spec) {
			used[imageName(c.Image)] = true
		}
	}
	for _, img := range k.Images {
		if !used[img.Name] {
			p.add("kustomization.yaml: image %q is used by no container", img.Name)
		}
	}
}

// imageName is an image reference without its tag or digest.
func imageName(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// checkSelectors: every selector selects what it is meant to, and only
// that.
func checkSelectors(b *bundle, p *problems) {
	ws := b.workloads()
	for _, w := range ws {
		own := labels.Set(w.template.Labels)
		if w.kind != "Job" {
			if w.selector == nil || (len(w.selector.MatchLabels) == 0 && len(w.selector.MatchExpressions) == 0) {
				p.add("%s: no selector", w)
				continue
			}
			if !selects(w.selector, own) {
				p.add("%s: selector does not match its pod template labels %v", w, own)
			}
			for _, o := range ws {
				if o.name != w.name && selects(w.selector, o.template.Labels) {
					p.add("%s: selector also matches the pods of %s", w, o)
				}
			}
		}
		for _, t := range w.template.Spec.TopologySpreadConstraints {
			if !selects(t.LabelSelector, own) {
				p.add("%s: topologySpreadConstraints %s: labelSelector does not match its own pods", w, t.TopologyKey)
			}
		}
	}

	for _, name := range sortedKeys(b.services) {
		s := b.services[name]
		if len(s.Spec.Selector) == 0 {
			p.add("Service %s: no selector", name)
			continue
		}
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var picked []workload
		for _, w := range ws {
			if sel.Matches(labels.Set(w.template.Labels)) {
				picked = append(picked, w)
			}
		}
		if len(picked) == 0 {
			p.add("Service %s: selects no pods (%v)", name, s.Spec.Selector)
		}
		for _, port := range s.Spec.Ports {
			target := port.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(port.Port)
			}
			for _, w := range picked {
				if _, ok := podPort(&w.template.Spec, target); !ok {
					p.add("Service %s: targetPort %q is not a port of %s", name, target.String(), w)
				}
			}
		}
	}

	budgets := map[string][]string{}
	for _, name := range sortedKeys(b.pdbs) {
		pdb := b.pdbs[name]
		if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
			p.add("PodDisruptionBudget %s: set minAvailable or maxUnavailable", name)
		}
		n := 0
		for _, w := range ws {
			if w.kind != "Job" && selects(pdb.Spec.Selector, w.template.Labels) {
				budgets[w.String()] = append(budgets[w.String()], name)
				n++
			}
		}
		if n == 0 {
			p.add("PodDisruptionBudget %s: selects no pods", name)
		}
	}
	for _, w := range ws {
		if w.kind == "Job" {
			continue
		}
		switch n := len(budgets[w.String()]); {
		case n == 0:
			p.add("%s has no PodDisruptionBudget: a node drain could stop all its pods at once", w)
		case n > 1:
			p.add("%s is selected by PodDisruptionBudgets %v: eviction refuses pods with more than one", w, budgets[w.String()])
		}
	}

	for _, name := range sortedKeys(b.netpols) {
		np := b.netpols[name]
		var targets []workload
		for _, w := range ws {
			if selects(&np.Spec.PodSelector, w.template.Labels) {
				targets = append(targets, w)
			}
		}
		if len(targets) == 0 {
			p.add("NetworkPolicy %s: podSelector selects no pods", name)
		}
		for _, rule := range np.Spec.Ingress {
			for _, from := range rule.From {
				if from.PodSelector == nil || from.NamespaceSelector != nil {
					continue
				}
				if !slices.ContainsFunc(ws, func(w workload) bool { return selects(from.PodSelector, w.template.Labels) }) {
					p.add("NetworkPolicy %s: ingress from %v selects no pods", name, from.PodSelector.MatchLabels)
				}
			}
			for _, port := range rule.Ports {
				for _, w := range targets {
					if port.Port != nil {
						if _, ok := podPort(&w.template.Spec, *port.Port); !ok {
							p.add("NetworkPolicy %s: port %q is not a port of %s", name, port.Port.String(), w)
						}
					}
				}
			}
		}
	}
}

// selects reports whether a label selector matches labels (a nil selector
// matches nothing).
func selects(sel *metav1.LabelSelector, l map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(labels.Set(l))
}

// podPort resolves a port, by name or number, among the pod's container
// ports.
func podPort(spec *corev1.PodSpec, port intstr.IntOrString) (int32, bool) {
	for _, c := range spec.Containers {
		if n, ok := containerPort(c, port); ok {
			return n, true
		}
	}
	return 0, false
}

func containerPort(c corev1.Container, port intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// checkReferences: every volume, ConfigMap, Secret and key a pod uses
// exists in the manifests, and every example Secret is used.
func checkReferences(b *bundle, p *problems) {
	usedSecrets := map[string]bool{}
	secret := func(at, name, key string) {
		usedSecrets[name] = true
		switch {
		case b.secrets[name] == nil:
			p.add("%s: Secret %s does not exist (not in k8s/*.example.yaml)", at, name)
		case key != "" && !slices.Contains(b.secretKeys(name), key):
			p.add("%s: Secret %s has no key %s", at, name, key)
		}
	}
	configMap := func(at, name, key string) {
		switch cm := b.configMaps[name]; {
		case cm == nil:
			p.add("%s: ConfigMap %s does not exist", at, name)
		case key != "":
			if _, ok := cm.Data[key]; !ok {
				p.add("%s: ConfigMap %s has no key %s", at, name, key)
			}
		}
	}
	for _, w := range b.workloads() {
		spec := &w.template.Spec
		mounted := map[string]bool{}
		for _, c := range containers(spec) {
			at := fmt.Sprintf("%s: container %s", w, c.Name)
			for _, m := range c.VolumeMounts {
				mounted[m.Name] = true
				v := volume(spec, m.Name)
				if v == nil && !slices.Contains(w.claims, m.Name) {
					p.add("%s: mounts volume %q, which the pod does not have", at, m.Name)
				}
				if v != nil && m.SubPath != "" {
					if _, err := b.volumeFile(v, m.SubPath); err != nil {
						p.add("%s: subPath %s: %v", at, m.SubPath, err)
					}
				}
			}
			for _, e := range c.Env {
				switch f := e.ValueFrom; {
				case f == nil:
				case f.SecretKeyRef != nil:
					secret(at+": env "+e.Name, f.SecretKeyRef.Name, f.SecretKeyRef.Key)
				case f.ConfigMapKeyRef != nil:
					configMap(at+": env "+e.Name, f.ConfigMapKeyRef.Name, f.ConfigMapKeyRef.Key)
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					secret(at+": envFrom", e.SecretRef.Name, "")
				}
				if e.ConfigMapRef != nil {
					configMap(at+": envFrom", e.ConfigMapRef.Name, "")
				}
			}
		}
		for _, v := range spec.Volumes {
			at := fmt.Sprintf("%s: volume %s", w, v.Name)
			if !mounted[v.Name] {
				p.add("%s: mounted by no container", at)
			}
			if v.ConfigMap != nil {
				configMap(at, v.ConfigMap.Name, "")
				for _, it := range v.ConfigMap.Items {
					configMap(at, v.ConfigMap.Name, it.Key)
				}
			}
			if v.Secret != nil {
				secret(at, v.Secret.SecretName, "")
				for _, it := range v.Secret.Items {
					secret(at, v.Secret.SecretName, it.Key)
				}
			}
			if v.PersistentVolumeClaim != nil {
				p.add("%s: PersistentVolumeClaim %s is not in the manifests; use volumeClaimTemplates", at, v.PersistentVolumeClaim.ClaimName)
			}
		}
		for _, s := range spec.ImagePullSecrets {
			secret(w.String()+": imagePullSecrets", s.Name, "")
		}
	}
	for _, name := range sortedKeys(b.secrets) {
		if !usedSecrets[name] {
			p.add("Secret %s (example) is used by no workload", name)
		}
	}
	if b.keygen != nil && b.secrets[keysSecret] != nil {
		if want, got := sortedKeys(b.keygen), b.secretKeys(keysSecret); !slices.Equal(want, got) {
			p.add("Secret %s: keys %v are not the files `lethe keygen` writes %v, which `kubectl create secret --from-file` loads", keysSecret, got, want)
		}
	}
}

func volume(spec *corev1.PodSpec, name string) *corev1.Volume {
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == name {
			return &spec.Volumes[i]
		}
	}
	return nil
}

// volumeFile is the content of file name (relative to the mount) of a
// ConfigMap or Secret volume.
func (b *bundle) volumeFile(v *corev1.Volume, name string) (string, error) {
	key := func(items []corev1.KeyToPath) string {
		if len(items) == 0 {
			return name
		}
		for _, it := range items {
			if it.Path == name {
				return it.Key
			}
		}
		return ""
	}
	switch {
	case v.ConfigMap != nil:
		cm := b.configMaps[v.ConfigMap.Name]
		if cm == nil {
			return "", fmt.Errorf("ConfigMap %s does not exist", v.ConfigMap.Name)
		}
		k := key(v.ConfigMap.Items)
		s, ok := cm.Data[k]
		if !ok {
			return "", fmt.Errorf("ConfigMap %s has no file %s", v.ConfigMap.Name, name)
		}
		return s, nil
	case v.Secret != nil:
		k := key(v.Secret.Items)
		s, ok := b.secretValue(v.Secret.SecretName, k)
		if !ok {
			return "", fmt.Errorf("Secret %s has no file %s", v.Secret.SecretName, name)
		}
		return s, nil
	}
	return "", fmt.Errorf("volume %s holds no file the manifests provide", v.Name)
}

// fileIn is what container c of w reads at path p, through its mounts.
func (b *bundle) fileIn(w workload, c corev1.Container, p string) (string, error) {
	mounts := slices.Clone(c.VolumeMounts)
	slices.SortFunc(mounts, func(x, y corev1.VolumeMount) int { return len(y.MountPath) - len(x.MountPath) })
	for _, m := range mounts {
		var name string
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		switch {
		case m.SubPath != "" && p == m.MountPath:
			name = m.SubPath
		case m.SubPath == "" && strings.HasPrefix(p, dir):
			name = strings.TrimPrefix(p, dir)
		default:
			continue
		}
		v := volume(&w.template.Spec, m.Name)
		if v == nil {
			return "", fmt.Errorf("%s is on volume %q, which the pod does not have", p, m.Name)
		}
		s, err := b.volumeFile(v, name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", p, err)
		}
		return s, nil
	}
	return "", fmt.Errorf("%s is not provided by any volume mount", p)
}

// environ is the environment of container c of w, with Secrets' example
// values.
func (b *bundle) environ(w workload, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil {
			for _, k := range b.secretKeys(e.SecretRef.Name) {
				env[e.Prefix+k], _ = b.secretValue(e.SecretRef.Name, k)
			}
		}
		if e.ConfigMapRef != nil && b.configMaps[e.ConfigMapRef.Name] != nil {
			for k, v := range b.configMaps[e.ConfigMapRef.Name].Data {
				env[e.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch f := e.ValueFrom; {
		case f == nil:
			env[e.Name] = e.Value
		case f.SecretKeyRef != nil:
			env[e.Name], _ = b.secretValue(f.SecretKeyRef.Name, f.SecretKeyRef.Key)
		case f.ConfigMapKeyRef != nil && b.configMaps[f.ConfigMapKeyRef.Name] != nil:
			env[e.Name] = b.configMaps[f.ConfigMapKeyRef.Name].Data[f.ConfigMapKeyRef.Key]
		case f.FieldRef != nil && f.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = w.name + "-0"
		default:
			env[e.Name] = "from-" + e.Name
		}
	}
	return env
}

// checkSecurity: every container runs as a non-root user, read-only,
// without privileges, capabilities or escalation, under a seccomp profile
// (Pod Security "restricted", plus a read-only root), with resources.
func checkSecurity(b *bundle, p *problems) {
	for _, w := range b.workloads() {
		spec := &w.template.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			p.add("%s: automountServiceAccountToken must be false: nothing here talks to the Kubernetes API", w)
		}
		if spec.HostNetwork || spec.HostPID || spec.HostIPC {
			p.add("%s: must not share the host's network, PIDs or IPC", w)
		}
		pod := spec.SecurityContext
		if pod == nil {
			pod = &corev1.PodSecurityContext{}
		}
		for _, c := range containers(spec) {
			at := fmt.Sprintf("%s: container %s", w, c.Name)
			sc := c.SecurityContext
			if sc == nil {
				sc = &corev1.SecurityContext{}
			}
			if !isTrue(first(sc.RunAsNonRoot, pod.RunAsNonRoot)) {
				p.add("%s: runAsNonRoot must be true", at)
			}
			switch uid := first(sc.RunAsUser, pod.RunAsUser); {
			case uid == nil:
				p.add("%s: set a numeric runAsUser, so that runAsNonRoot can be verified", at)
			case *uid == 0:
				p.add("%s: runAsUser must not be 0", at)
			}
			if !isTrue(sc.ReadOnlyRootFilesystem) {
				p.add("%s: readOnlyRootFilesystem must be true", at)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				p.add("%s: allowPrivilegeEscalation must be false", at)
			}
			if isTrue(sc.Privileged) {
				p.add("%s: must not be privileged", at)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				p.add("%s: capabilities must drop ALL and add none", at)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = pod.SeccompProfile
			}
			if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
				p.add("%s: seccompProfile must be RuntimeDefault (or Localhost)", at)
			}
			r := c.Resources
			if r.Requests.Cpu().IsZero() || r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() {
				p.add("%s: set cpu and memory requests and a memory limit", at)
			}
		}
	}
}

func first[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// letheContainer is a container running the lethe image.
type letheContainer struct {
	w     workload
	c     corev1.Container
	init  bool
	cmd   string            // serve, worker, migrate
	flags map[string]string // flag name without dashes → value ("true" for booleans)
}

func (l letheContainer) String() string { return fmt.Sprintf("%s: container %s", l.w, l.c.Name) }

// letheCommands are the subcommands the manifests may run, with their
// flags (true: takes a value), as internal/app defines them.
var letheCommands = map[string]map[string]bool{
	"serve":   {"config": true, "no-workers": false, "no-migrate": false},
	"worker":  {"config": true, "connectors": true},
	"migrate": {"config": true},
}

// parseArgs reads a lethe command line the way Go's flag package does.
func parseArgs(args []string) (string, map[string]string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("no lethe subcommand in args")
	}
	cmd, known := args[0], letheCommands[args[0]]
	if known == nil {
		return cmd, nil, fmt.Errorf("runs lethe %s; want serve, worker or migrate", cmd)
	}
	flags := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return cmd, nil, fmt.Errorf("unexpected argument %q for lethe %s", a, cmd)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := known[name]
		switch {
		case !ok:
			return cmd, nil, fmt.Errorf("unknown flag --%s for lethe %s", name, cmd)
		case takesValue && !hasValue:
			if i+1 == len(args) {
				return cmd, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			value = args[i]
		case !takesValue && !hasValue:
			value = "true"
		}
		flags[name] = value
	}
	return cmd, flags, nil
}

// connectorsRun are the connector instances a worker runs; nil: all.
func (l letheContainer) connectorsRun() []string {
	var names []string
	for _, n := range strings.Split(l.flags["connectors"], ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// lethe finds the containers running the lethe image and the config they
// read. Problems found on the way go to p when it is not nil.
func (b *bundle) lethe(p *problems) ([]letheContainer, *config.Config, []byte) {
	if p == nil {
		p = &problems{}
	}
	var out []letheContainer
	var raw []byte
	var cfgAt string
	for _, w := range b.workloads() {
		spec := &w.template.Spec
		for i, c := range containers(spec) {
			if path.Base(imageName(c.Image)) != "lethe" {
				continue
			}
			l := letheContainer{w: w, c: c, init: i < len(spec.InitContainers)}
			if len(c.Command) > 0 {
				p.add("%s: leave command to the image's ENTRYPOINT (lethe) and give args", l)
			}
			var err error
			if l.cmd, l.flags, err = parseArgs(c.Args); err != nil {
				p.add("%s: %v", l, err)
			}
			out = append(out, l)
			if l.flags["config"] == "" {
				if l.flags != nil {
					p.add("%s: lethe %s without --config", l, l.cmd)
				}
				continue
			}
			body, err := b.fileIn(w, c, l.flags["config"])
			switch {
			case err != nil:
				p.add("%s: --config %v", l, err)
			case raw == nil:
				raw, cfgAt = []byte(body), fmt.Sprintf("%s --config %s", l, l.flags["config"])
			case body != string(raw):
				p.add("%s: reads another config than %s: every Lethe process needs the same connectors and streams", l, cfgAt)
			}
		}
	}
	if raw == nil {
		p.add("no container runs lethe with a config")
		return out, nil, nil
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		p.add("lethe.yaml (%s): %v", cfgAt, err)
		return out, nil, raw
	}
	if err := cfg.Validate(); err != nil {
		p.add("lethe.yaml (%s): %v", cfgAt, err)
	}
	return out, cfg, raw
}

// checkLethe: Lethe's containers run valid commands on a valid config,
// probe and expose the port the config listens on, migrate the schema and
// run every connector somewhere, and get every secret their config reads.
func checkLethe(b *bundle, p *problems) {
	ls, cfg, raw := b.lethe(p)
	if cfg == nil {
		return
	}
	if cfg.Store.Driver != "postgres" {
		p.add("lethe.yaml: store.driver must be postgres: several processes share the store")
	}
	listen := listenPort(cfg, p)
	names := make([]string, len(cfg.Connectors))
	for i, c := range cfg.Connectors {
		names[i] = c.Name
	}
	noWorkers, runByWorkers := false, map[string]bool{}
	for _, l := range ls {
		switch l.cmd {
		case "serve":
			noWorkers = noWorkers || l.flags["no-workers"] == "true"
			if l.flags["no-migrate"] == "true" && !b.migrates(l) {
				p.add("%s: serves with --no-migrate, but no init container or Job runs lethe migrate", l)
			}
		case "worker":
			run := l.connectorsRun()
			if run == nil {
				run = names
			}
			for _, n := range run {
				if !slices.Contains(names, n) {
					p.add("%s: --connectors: no connector named %q in the config", l, n)
				}
				runByWorkers[n] = true
			}
		}
		if l.cmd == "serve" || l.cmd == "worker" {
			checkServing(l, listen, p)
		}
		if l.flags != nil {
			b.checkSecretsProvided(l, raw, p)
		}
	}
	if noWorkers {
		for _, n := range names {
			if !runByWorkers[n] {
				p.add("connector %s runs in no worker: the API runs serve --no-workers, and no lethe worker names it in --connectors", n)
			}
		}
	}
}

func listenPort(cfg *config.Config, p *problems) int32 {
	_, port, err := net.SplitHostPort(cfg.Listen)
	n, err2 := strconv.Atoi(port)
	if err != nil || err2 != nil {
		p.add("lethe.yaml: listen %q has no port", cfg.Listen)
	}
	return int32(n)
}

// migrates reports whether an init container of l's pod, or a Job, runs
// lethe migrate.
func (b *bundle) migrates(l letheContainer) bool {
	run := func(c corev1.Container) bool {
		cmd, _, err := parseArgs(c.Args)
		return path.Base(imageName(c.Image)) == "lethe" && err == nil && cmd == "migrate"
	}
	if slices.ContainsFunc(l.w.template.Spec.InitContainers, run) {
		return true
	}
	for _, j := range b.jobs {
		if slices.ContainsFunc(containers(&j.Spec.Template.Spec), run) {
			return true
		}
	}
	return false
}

// checkServing: a serve or worker container exposes the listen port as
// "http", is probed there (/healthz for readiness, /livez for liveness),
// is scraped there, and has time to stop.
func checkServing(l letheContainer, listen int32, p *problems) {
	if l.init {
		p.add("%s: lethe %s is a server, not an init container", l, l.cmd)
		return
	}
	if port, ok := containerPort(l.c, intstr.FromString("http")); !ok {
		p.add("%s: no container port named http", l)
	} else if port != listen {
		p.add("%s: container port http is %d, but the config listens on %d", l, port, listen)
	}
	probe := func(kind string, pr *corev1.Probe, paths ...string) {
		if pr == nil {
			if kind != "startupProbe" {
				p.add("%s: no %s", l, kind)
			}
			return
		}
		if pr.HTTPGet == nil || !slices.Contains(paths, pr.HTTPGet.Path) {
			p.add("%s: %s must GET %s", l, kind, strings.Join(paths, " or "))
			return
		}
		if pr.HTTPGet.Port != intstr.FromString("http") {
			p.add("%s: %s port %s: probe the named port http (the config's listen port %d)", l, kind, pr.HTTPGet.Port.String(), listen)
		}
	}
	probe("readinessProbe", l.c.ReadinessProbe, "/healthz")
	probe("livenessProbe", l.c.LivenessProbe, "/livez")
	probe("startupProbe", l.c.StartupProbe, "/livez", "/healthz")
	a := l.w.template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(int(listen)) || a["prometheus.io/path"] != "/metrics" {
		p.add("%s: pod annotations must have Prometheus scrape /metrics on port %d", l.w, listen)
	}
	if g := l.w.template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		p.add("%s: terminationGracePeriodSeconds must be at least 30", l.w)
	}
}

// checkSecretsProvided runs `lethe config check` as container l would: its
// config with the {file: …} secrets it reads taken from its volume mounts,
// and its environment from the Secrets' examples (lethe-keys from `lethe
// keygen`). A worker reads only NATS and the connectors it runs (`config
// check --worker`), so it needs no keys, database URL or tokens; migrate
// needs store.url only.
func (b *bundle) checkSecretsProvided(l letheContainer, raw []byte, p *problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil || len(doc.Content) == 0 {
		p.add("%s: lethe.yaml: %v", l, err)
		return
	}
	if only := l.connectorsRun(); l.cmd == "worker" && only != nil {
		keepConnectors(doc.Content[0], only)
	}
	apiOnly := l.cmd == "serve" && l.flags["no-workers"] == "true"
	if apiOnly {
		// serve --no-workers builds only the connectors taking callbacks.
		if cfg, err := config.Parse(raw); err == nil {
			var keep []string
			for _, c := range cfg.Connectors {
				if def, ok := connectors.Lookup(c.Type); ok && def.Callbacks {
					keep = append(keep, c.Name)
				}
			}
			keepConnectors(doc.Content[0], keep)
		}
	}
	dir, err := os.MkdirTemp("", "lethe-deploy-")
	if err != nil {
		p.add("%v", err)
		return
	}
	defer os.RemoveAll(dir)
	missing := map[string]error{}
	reads := &doc
	if l.cmd == "worker" {
		reads = section(doc.Content[0], "connectors")
	}
	walkSecrets(reads, func(kind string, value *yaml.Node) {
		if kind != "file" {
			return
		}
		body, err := b.fileIn(l.w, l.c, value.Value)
		if err != nil {
			missing[value.Value] = err
			return
		}
		copyPath, err := writeTemp(dir, body)
		if err != nil {
			missing[value.Value] = err
			return
		}
		value.Value = copyPath
	})
	out, err := yaml.Marshal(&doc)
	if err != nil {
		p.add("%s: %v", l, err)
		return
	}
	cfg, err := config.Parse(out)
	if err != nil {
		return // reported with the config
	}
	env := b.environ(l.w, l.c)
	getenv := func(k string) string { return env[k] }
	if l.cmd == "migrate" {
		if err := missing[cfg.Store.URL.File]; err != nil {
			p.add("%s: config reads %v", l, err)
		} else if _, err := cfg.Store.URL.Reveal(getenv); err != nil {
			p.add("%s: store.url: %v", l, err)
		}
		return
	}
	if len(missing) > 0 {
		for _, f := range sortedKeys(missing) {
			p.add("%s: config reads %v", l, missing[f])
		}
		return
	}
	check := []string{"lethe", "config", "check"}
	if apiOnly {
		check = append(check, "--no-workers")
	}
	if l.cmd == "worker" {
		check = append(check, "--worker")
	} else if _, err := cfg.Store.URL.Reveal(getenv); err != nil {
		p.add("%s: store.url: %v", l, err)
	}
	file, err := writeTemp(dir, string(out))
	if err != nil {
		p.add("%v", err)
		return
	}
	var stdout, stderr bytes.Buffer
	if code := app.Run(context.Background(), append(check, "--config", file), getenv, &stdout, &stderr); code != 0 {
		p.add("%s: lethe config check: %s", l, strings.TrimSpace(stderr.String()))
	}
}

// walkSecrets calls f for every {env: …} and {file: …} in a config.
func walkSecrets(n *yaml.Node, f func(kind string, value *yaml.Node)) {
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 && (n.Content[0].Value == "env" || n.Content[0].Value == "file") {
		f(n.Content[0].Value, n.Content[1])
		return
	}
	for _, c := range n.Content {
		walkSecrets(c, f)
	}
}

// section is the value of key in a config's top-level mapping (an empty
// node if it has none).
func section(root *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == key {
			return root.Content[i+1]
		}
	}
	return &yaml.Node{}
}

// keepConnectors drops from a config's connectors list those not in names.
func keepConnectors(root *yaml.Node, names []string) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "connectors" {
			continue
		}
		list := root.Content[i+1]
		list.Content = slices.DeleteFunc(list.Content, func(c *yaml.Node) bool {
			for j := 0; j+1 < len(c.Content); j += 2 {
				if c.Content[j].Value == "name" {
					return !slices.Contains(names, c.Content[j+1].Value)
				}
			}
			return true
		})
	}
}

func writeTemp(dir, body string) (string, error) {
	f, err := os.CreateTemp(dir, "file-")
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return "", err
	}
	return f.Name(), f.Close()
}

// checkAutoscalers: each HPA scales an existing Deployment that leaves its
// replicas to it, on the queues of connectors that Deployment runs.
func checkAutoscalers(b *bundle, p *problems) {
	ls, cfg, _ := b.lethe(nil)
	for _, name := range sortedKeys(b.hpas) {
		h := b.hpas[name]
		ref := h.Spec.ScaleTargetRef
		d := b.deployments[ref.Name]
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || d == nil {
			p.add("HorizontalPodAutoscaler %s: scaleTargetRef %s %s does not exist", name, ref.Kind, ref.Name)
			continue
		}
		if d.Spec.Replicas != nil {
			p.add("Deployment %s sets spec.replicas, which HorizontalPodAutoscaler %s manages: every apply would reset it", ref.Name, name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			p.add("HorizontalPodAutoscaler %s: want 1 <= minReplicas <= maxReplicas", name)
		}
		if len(h.Spec.Metrics) == 0 {
			p.add("HorizontalPodAutoscaler %s: no metrics", name)
		}
		var runs []string
		for _, l := range ls {
			if l.w.kind == "Deployment" && l.w.name == ref.Name && l.cmd == "worker" {
				if run := l.connectorsRun(); run != nil {
					runs = append(runs, run...)
				} else if cfg != nil {
					for _, c := range cfg.Connectors {
						runs = append(runs, c.Name)
					}
				}
			}
		}
		for _, m := range h.Spec.Metrics {
			if m.External == nil || m.External.Metric.Name != "lethe_tasks_pending" {
				continue
			}
			sel := m.External.Metric.Selector
			var connector string
			if sel != nil {
				connector = sel.MatchLabels["connector"]
			}
			if !slices.Contains(runs, connector) {
				p.add("HorizontalPodAutoscaler %s: scales on connector %q, which Deployment %s does not run", name, connector, ref.Name)
			}
			if m.External.Target.Type != "AverageValue" || m.External.Target.AverageValue == nil {
				p.add("HorizontalPodAutoscaler %s: lethe_tasks_pending is per connector, not per pod: target an AverageValue", name)
			}
		}
	}
}

// natsVarRe finds the environment variables a NATS config refers to.
var natsVarRe = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)

// checkNATS: nats/nats.conf is what the StatefulSet runs, parses with the
// NATS server's own parser, and describes a three-server JetStream cluster
// on encrypted file storage that Lethe's nats.url lists in full.
func checkNATS(b *bundle, p *problems) {
	conf, err := fs.ReadFile(b.fsys, "nats/nats.conf")
	if err != nil {
		p.add("nats/nats.conf: %v", err)
		return
	}
	sts := b.statefulSets["nats"]
	if sts == nil {
		p.add("no StatefulSet nats")
		return
	}
	w := workload{kind: "StatefulSet", name: "nats", template: &sts.Spec.Template}
	var c corev1.Container
	for _, cc := range sts.Spec.Template.Spec.Containers {
		if cc.Name == "nats" {
			c = cc
		}
	}
	args := append(slices.Clone(c.Command), c.Args...)
	i := slices.Index(args, "--config")
	if i < 0 || i+1 == len(args) {
		p.add("StatefulSet nats: container nats: no --config FILE")
		return
	}
	if inPod, err := b.fileIn(w, c, args[i+1]); err != nil {
		p.add("StatefulSet nats: container nats: --config %v", err)
	} else if inPod != string(conf) {
		p.add("ConfigMap nats-config nats.conf differs from nats/nats.conf: keep them identical")
	}

	// Parse with the container's environment, as the server in the pod does.
	env := b.environ(w, c)
	var vars []string
	for _, m := range natsVarRe.FindAllStringSubmatch(string(stripComments(conf)), -1) {
		if !slices.Contains(vars, m[1]) {
			vars = append(vars, m[1])
		}
		if _, ok := env[m[1]]; !ok {
			p.add("nats.conf uses $%s, which container nats does not set", m[1])
		}
	}
	restore := setenv(vars, env)
	defer restore()
	dir, err := os.MkdirTemp("", "nats-conf-")
	if err != nil {
		p.add("%v", err)
		return
	}
	defer os.RemoveAll(dir)
	file, err := writeTemp(dir, string(conf))
	if err != nil {
		p.add("%v", err)
		return
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		p.add("nats.conf: %v", err)
		return
	}

	replicas := int32(1)
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	if replicas != 3 {
		p.add("StatefulSet nats: want 3 servers, have %d", replicas)
	}
	if s := b.services[sts.Spec.ServiceName]; s == nil || s.Spec.ClusterIP != "None" || !s.Spec.PublishNotReadyAddresses {
		p.add("StatefulSet nats: serviceName %q must be a headless Service publishing not-ready servers (the cluster forms before any is ready)", sts.Spec.ServiceName)
	}
	port := func(name string) int {
		n, _ := containerPort(c, intstr.FromString(name))
		return int(n)
	}
	if opts.Port != port("client") || opts.Cluster.Port != port("cluster") || opts.HTTPPort != port("monitor") {
		p.add("nats.conf: ports %d/%d/%d are not the container's client/cluster/monitor ports", opts.Port, opts.Cluster.Port, opts.HTTPPort)
	}
	if opts.ServerName == "" || opts.ServerName != env["SERVER_NAME"] {
		p.add("nats.conf: server_name %q must come from the pod name", opts.ServerName)
	}
	if !opts.JetStream || opts.StoreDir == "" || opts.JetStreamMaxStore <= 0 {
		p.add("nats.conf: want JetStream with store_dir and max_file_store")
	}
	if opts.JetStreamKey == "" || opts.JetStreamCipher != server.ChaCha {
		p.add("nats.conf: JetStream must be encrypted at rest (cipher: chachapoly, key: $JS_KEY): task messages carry identifiers")
	}
	claim := ""
	for _, m := range c.VolumeMounts {
		if opts.StoreDir == m.MountPath || strings.HasPrefix(opts.StoreDir, strings.TrimSuffix(m.MountPath, "/")+"/") {
			claim = m.Name
		}
	}
	for _, t := range sts.Spec.VolumeClaimTemplates {
		if t.Name == claim {
			if size := t.Spec.Resources.Requests.Storage(); size.Value() < opts.JetStreamMaxStore {
				p.add("nats.conf: max_file_store %d exceeds the volume's %s", opts.JetStreamMaxStore, size)
			}
			claim = ""
		}
	}
	if claim != "" || opts.StoreDir == "" {
		p.add("nats.conf: store_dir %s is not on a volumeClaimTemplate of StatefulSet nats", opts.StoreDir)
	}

	var routes, urls []string
	for i := range replicas {
		host := fmt.Sprintf("nats-%d.%s", i, sts.Spec.ServiceName)
		routes = append(routes, fmt.Sprintf("nats://%s:%d", host, port("cluster")))
		urls = append(urls, fmt.Sprintf("nats://%s:%d", host, port("client")))
	}
	var got []string
	for _, r := range opts.Routes {
		got = append(got, r.String())
	}
	if opts.Cluster.Name == "" || !slices.Equal(got, routes) {
		p.add("nats.conf: cluster routes %v; want a named cluster with routes %v", got, routes)
	}
	if _, cfg, _ := b.lethe(nil); cfg != nil {
		if have := strings.Split(cfg.NATS.URL, ","); !slices.Equal(have, urls) {
			p.add("lethe.yaml: nats.url must list every NATS server: %s", strings.Join(urls, ","))
		}
		if cfg.NATS.Replicas != min(int(replicas), 3) {
			p.add("lethe.yaml: nats.replicas is %d; want %d for %d servers", cfg.NATS.Replicas, min(int(replicas), 3), replicas)
		}
	}
}

// setenv sets the named variables to their values in env (unsetting those
// env lacks) and returns a function that puts them back.
func setenv(names []string, env map[string]string) func() {
	type saved struct {
		value string
		ok    bool
	}
	old := map[string]saved{}
	for _, n := range names {
		v, ok := os.LookupEnv(n)
		old[n] = saved{v, ok}
		if e, ok := env[n]; ok {
			os.Setenv(n, e)
		} else {
			os.Unsetenv(n)
		}
	}
	return func() {
		for n, s := range old {
			if s.ok {
				os.Setenv(n, s.value)
			} else {
				os.Unsetenv(n)
			}
		}
	}
}

// checkDockerfile: a multi-stage build whose final stage runs lethe as the
// numeric non-root user the pods run as, exposing the config's port.
func checkDockerfile(b *bundle, p *problems) {
	body, err := fs.ReadFile(b.fsys, "Dockerfile")
	if err != nil {
		p.add("Dockerfile: %v", err)
		return
	}
	var stages int
	var user, entrypoint string
	var expose []string
	for _, line := range strings.Split(strings.ReplaceAll(string(body), "\\\n", " "), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stages++
			user, entrypoint, expose = "", "", nil
		case "USER":
			user = strings.Join(fields[1:], " ")
		case "ENTRYPOINT":
			entrypoint = strings.Join(fields[1:], " ")
		case "EXPOSE":
			expose = append(expose, fields[1:]...)
		}
	}
	if stages < 2 {
		p.add("Dockerfile: want at least 2 FROM stages (build, then a minimal base); have %d", stages)
	}
	uid, _, _ := strings.Cut(user, ":")
	n, err := strconv.ParseInt(uid, 10, 64)
	if err != nil || n == 0 {
		p.add("Dockerfile: the final stage must set a numeric non-root USER (got %q), so that Kubernetes can verify runAsNonRoot", user)
	}
	if !strings.Contains(entrypoint, "lethe") {
		p.add("Dockerfile: ENTRYPOINT must be lethe (the manifests give its args), got %s", entrypoint)
	}
	ls, cfg, _ := b.lethe(nil)
	for _, l := range ls {
		if sc := l.w.template.Spec.SecurityContext; err == nil && sc != nil && sc.RunAsUser != nil && *sc.RunAsUser != n {
			p.add("Dockerfile: USER %d is not runAsUser %d of %s", n, *sc.RunAsUser, l.w)
		}
	}
	if cfg != nil {
		if port := listenPort(cfg, &problems{}); !slices.Contains(expose, strconv.Itoa(int(port))) && !slices.Contains(expose, fmt.Sprintf("%d/tcp", port)) {
			p.add("Dockerfile: EXPOSE %v lacks the config's listen port %d", expose, port)
		}
	}
}

// checkPostgres: postgresql.conf keeps commits durable and allows the
// connections every Lethe pod the manifests can run at once may open.
func checkPostgres(b *bundle, p *problems) {
	body, err := fs.ReadFile(b.fsys, "postgresql.conf")
	if err != nil {
		p.add("postgresql.conf: %v", err)
		return
	}
	settings := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			p.add("postgresql.conf: not a setting: %s", line)
			continue
		}
		value = strings.TrimSpace(value)
		if strings.HasPrefix(value, "'") {
			value, _, _ = strings.Cut(value[1:], "'")
		} else if v, _, ok := strings.Cut(value, "#"); ok {
			value = strings.TrimSpace(v)
		}
		settings[strings.TrimSpace(name)] = value
	}
	for _, s := range []string{"synchronous_commit", "fsync", "full_page_writes"} {
		if v, ok := settings[s]; ok && v != "on" {
			p.add("postgresql.conf: %s must be on: a certificate once issued must survive a crash", s)
		}
	}
	if settings["synchronous_commit"] == "" {
		p.add("postgresql.conf: synchronous_commit must be on, and said so")
	}
	if v := settings["idle_in_transaction_session_timeout"]; v == "" || v == "0" {
		p.add("postgresql.conf: set idle_in_transaction_session_timeout")
	}

	ls, cfg, _ := b.lethe(nil)
	if cfg == nil {
		return
	}
	// The most pods each Deployment can have at once: its replicas or its
	// autoscaler's maximum, plus the rollout's surge.
	pods := map[string]int{}
	for _, l := range ls {
		// Workers open no connection to Lethe's database.
		if l.w.kind != "Deployment" || l.init || l.cmd == "worker" {
			continue
		}
		d := b.deployments[l.w.name]
		n := 1
		if d.Spec.Replicas != nil {
			n = int(*d.Spec.Replicas)
		}
		for _, h := range b.hpas {
			if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == l.w.name {
				n = int(h.Spec.MaxReplicas)
			}
		}
		surge := intstr.FromString("25%")
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
			surge = *ru.MaxSurge
		}
		if d.Spec.Strategy.Type != "Recreate" {
			s, err := intstr.GetScaledValueFromIntOrPercent(&surge, n, true)
			if err != nil {
				p.add("Deployment %s: maxSurge: %v", l.w.name, err)
			}
			n += s
		}
		pods[l.w.name] = n
	}
	total, reserved := 0, 3
	var parts []string
	for _, name := range sortedKeys(pods) {
		total += pods[name]
		parts = append(parts, fmt.Sprintf("%s %d", name, pods[name]))
	}
	if v, ok := settings["superuser_reserved_connections"]; ok {
		reserved, _ = strconv.Atoi(v)
	}
	need := total*cfg.Store.MaxConns + reserved
	have, err := strconv.Atoi(settings["max_connections"])
	if err != nil {
		p.add("postgresql.conf: set max_connections")
	} else if have < need {
		p.add("postgresql.conf: max_connections = %d is less than the %d the manifests can open (%d pods × store.max_conns %d + %d reserved; %s)",
			have, need, total, cfg.Store.MaxConns, reserved, strings.Join(parts, ", "))
	}
}
