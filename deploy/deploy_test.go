// Package deploy_test checks the deployment files offline, with no cluster
// and no network: the Kubernetes manifests decode strictly into their API
// types and fit together; Lethe's config in them validates and every
// container gets the secrets and files that config reads; and the NATS,
// PostgreSQL and image files agree with the manifests. The checks live in
// checks_test.go; TestChecksCatchMistakes breaks the files on purpose to
// show that each check can fail.
package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lethe-dev/lethe/internal/app"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func TestDeployFiles(t *testing.T) {
	for _, err := range checkAll(os.DirFS(".")) {
		t.Error(err)
	}
}

// mistakes are edits that each break one thing the checks look after.
// Each edit replaces the first occurrence of old in file.
var mistakes = []struct {
	name  string
	edits []edit
	want  string // in one of the problems reported
}{
	{"unknown field", []edit{{"k8s/lethe-api.yaml", "  revisionHistoryLimit: 5", "  revisionHistoryLimit: 5\n  replica: 3"}},
		`unknown field "replica"`},
	{"unknown kind", []edit{{"k8s/networkpolicy.yaml", "kind: NetworkPolicy", "kind: NetworkPolice"}},
		"unknown kind networking.k8s.io/v1 NetworkPolice"},
	{"selector misses its pods", []edit{{"k8s/lethe-api.yaml", "      app.kubernetes.io/component: api\n  template:", "      app.kubernetes.io/component: apix\n  template:"}},
		"selector does not match its pod template"},
	{"selector takes another workload's pods", []edit{{"k8s/lethe-worker.yaml", "      app.kubernetes.io/component: worker\n  template:", "  template:"}},
		"selector also matches the pods of Deployment lethe"},
	{"service selects nothing", []edit{{"k8s/lethe-api.yaml", "spec:\n  selector:\n    app.kubernetes.io/name: lethe", "spec:\n  selector:\n    app.kubernetes.io/name: lethex"}},
		"Service lethe: selects no pods"},
	{"service port missing", []edit{{"k8s/lethe-api.yaml", "      targetPort: http", "      targetPort: web"}},
		`Service lethe: targetPort "web" is not a port of`},
	{"PDB selects nothing", []edit{{"k8s/lethe-worker.yaml", "  unhealthyPodEvictionPolicy: AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: lethe\n      app.kubernetes.io/component: worker", "  unhealthyPodEvictionPolicy: AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: lethe\n      app.kubernetes.io/component: workers"}},
		"PodDisruptionBudget lethe-worker: selects no pods"},
	{"PDB on the wrong pods", []edit{{"k8s/lethe-api.yaml", "  unhealthyPodEvictionPolicy: AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: lethe\n      app.kubernetes.io/component: api", "  unhealthyPodEvictionPolicy: AlwaysAllow\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: lethe\n      app.kubernetes.io/component: worker"}},
		"Deployment lethe has no PodDisruptionBudget"},
	{"readiness on /livez", []edit{{"k8s/lethe-api.yaml", "              path: /healthz", "              path: /livez"}},
		"readinessProbe must GET /healthz"},
	{"liveness on /healthz", []edit{{"k8s/lethe-worker.yaml", "          livenessProbe:\n            httpGet:\n              path: /livez", "          livenessProbe:\n            httpGet:\n              path: /healthz"}},
		"livenessProbe must GET /livez"},
	{"probe on another port", []edit{{"k8s/lethe-worker-salesforce.yaml", "              path: /healthz\n              port: http", "              path: /healthz\n              port: 9090"}},
		"readinessProbe port 9090: probe the named port http"},
	{"listen moved", []edit{{"k8s/lethe-config.yaml", `listen: ":8080"`, `listen: ":9090"`}},
		"container port http is 8080, but the config listens on 9090"},
	{"invalid config", []edit{{"k8s/lethe-config.yaml", "replicas: 3", "replicas: 2"}},
		"nats.replicas: must be 1, 3 or 5"},
	{"unknown connector in --connectors", []edit{{"k8s/lethe-worker-salesforce.yaml", `"--connectors", "sfdc"`, `"--connectors", "salesforce"`}},
		`no connector named "salesforce"`},
	{"connector without a worker", []edit{{"k8s/lethe-worker.yaml", `"--connectors", "shop-db"`, `"--connectors", "sfdc"`}},
		"connector shop-db runs in no worker"},
	{"misspelt flag", []edit{{"k8s/lethe-api.yaml", `"--no-workers"`, `"--no-worker"`}},
		`unknown flag --no-worker for lethe serve`},
	{"no migrations", []edit{{"k8s/lethe-api.yaml", `args: ["migrate", "--config", "/etc/lethe/lethe.yaml"]`, `args: ["version"]`}},
		"serves with --no-migrate, but no init container or Job runs lethe migrate"},
	{"HPA target missing", []edit{{"k8s/lethe-worker.yaml", "    kind: Deployment\n    name: lethe-worker", "    kind: Deployment\n    name: lethe-workers"}},
		"scaleTargetRef Deployment lethe-workers does not exist"},
	{"HPA on another connector's queue", []edit{{"k8s/lethe-worker.yaml", "              connector: shop-db", "              connector: sfdc"}},
		`scales on connector "sfdc", which Deployment lethe-worker does not run`},
	{"replicas fight the HPA", []edit{{"k8s/lethe-worker.yaml", "  revisionHistoryLimit: 5", "  replicas: 2\n  revisionHistoryLimit: 5"}},
		"sets spec.replicas, which HorizontalPodAutoscaler lethe-worker manages"},
	{"missing ConfigMap", []edit{{"k8s/lethe-worker.yaml", "            name: lethe-config", "            name: lethe-conf"}},
		"ConfigMap lethe-conf does not exist"},
	{"missing Secret key", []edit{{"k8s/lethe-worker.yaml", "                  key: SHOP_DATABASE_URL", "                  key: SHOP_DB_URL"}},
		"Secret lethe-env has no key SHOP_DB_URL"},
	{"mount without volume", []edit{{"k8s/lethe-worker-salesforce.yaml", "            - name: sfdc\n              mountPath", "            - name: salesforce\n              mountPath"}},
		`mounts volume "salesforce", which the pod does not have`},
	{"writable root", []edit{{"k8s/nats.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false"}},
		"container nats: readOnlyRootFilesystem must be true"},
	{"root user", []edit{{"k8s/lethe-worker.yaml", "        runAsUser: 65532", "        runAsUser: 0"}},
		"container lethe: runAsUser must not be 0"},
	{"privilege escalation", []edit{{"k8s/lethe-api.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true"}},
		"container migrate: allowPrivilegeEscalation must be false"},
	{"capabilities kept", []edit{{"k8s/lethe-worker-salesforce.yaml", `drop: ["ALL"]`, `drop: ["NET_RAW"]`}},
		"capabilities must drop ALL"},
	{"config reads a key that is not mounted", []edit{{"k8s/lethe-api.yaml", "              mountPath: /etc/lethe/keys", "              mountPath: /etc/lethe/secrets"}},
		"/etc/lethe/keys/signing.key is not provided by any volume mount"},
	{"config reads an env var that is not set", []edit{{"k8s/lethe-api.yaml", "            - name: LETHE_AGENT_TOKEN", "            - name: AGENT_TOKEN"}},
		"environment variable LETHE_AGENT_TOKEN is empty or unset"},
	{"a worker's connector reads an env var that is not set", []edit{{"k8s/lethe-worker.yaml", "            - name: SHOP_DATABASE_URL", "            - name: SHOP_DSN"}},
		`Deployment lethe-worker: container lethe: lethe config check: lethe: config: connectors[0]: connector "shop-db" (sql): dsn: environment variable SHOP_DATABASE_URL`},
	{"a worker's connector reads a file that is not mounted", []edit{{"k8s/lethe-worker-salesforce.yaml", "              mountPath: /etc/lethe/sfdc", "              mountPath: /etc/lethe/salesforce"}},
		"/etc/lethe/sfdc/access-token is not provided by any volume mount"},
	{"connector config wrong", []edit{{"k8s/lethe-config.yaml", "objects: [Contact, Lead]", "objects: [Contact, Account]"}},
		`"Account" is not one of`},
	{"kustomization misses a file", []edit{{"k8s/kustomization.yaml", "  - networkpolicy.yaml\n", ""}},
		"kustomization.yaml does not list networkpolicy.yaml"},
	{"secrets applied by kustomize", []edit{{"k8s/kustomization.yaml", "  - networkpolicy.yaml\n", "  - networkpolicy.yaml\n  - secrets.example.yaml\n"}},
		"kustomization.yaml lists secrets.example.yaml"},
	{"NATS copies differ", []edit{{"nats/nats.conf", "max_file_store: 8GB", "max_file_store: 9GB"}},
		"ConfigMap nats-config nats.conf differs from nats/nats.conf"},
	{"two routes", []edit{{"nats/nats.conf", "    nats://nats-2.nats:6222\n", ""}, {"k8s/nats.yaml", "        nats://nats-2.nats:6222\n", ""}},
		"nats.conf: cluster routes"},
	{"no encryption at rest", []edit{{"nats/nats.conf", "  key: $JS_KEY\n", ""}, {"k8s/nats.yaml", "      key: $JS_KEY\n", ""}},
		"nats.conf: JetStream must be encrypted at rest"},
	{"NATS env var not set", []edit{{"k8s/nats.yaml", "            - name: JS_KEY", "            - name: JETSTREAM_KEY"}},
		"nats.conf uses $JS_KEY, which container nats does not set"},
	{"nats.url misses a server", []edit{{"k8s/lethe-config.yaml", ",nats://nats-2.nats:4222", ""}},
		"nats.url must list every NATS server"},
	{"single-stage image", []edit{{"Dockerfile", "FROM golang:1.26 AS build", "# no build stage"}},
		"Dockerfile: want at least 2 FROM stages"},
	{"image runs as root", []edit{{"Dockerfile", "USER 65532:65532", "USER root"}},
		"Dockerfile: the final stage must set a numeric non-root USER"},
	{"too few database connections", []edit{{"postgresql.conf", "max_connections = 100", "max_connections = 40"}},
		"postgresql.conf: max_connections = 40 is less than the 43"},
	{"synchronous_commit off", []edit{{"postgresql.conf", "synchronous_commit = on", "synchronous_commit = off"}},
		"postgresql.conf: synchronous_commit must be on"},
}

type edit struct{ file, old, new string }

func TestChecksCatchMistakes(t *testing.T) {
	base := os.DirFS(".")
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			err := fs.WalkDir(base, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				b, err := fs.ReadFile(base, p)
				fsys[p] = &fstest.MapFile{Data: b}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range m.edits {
				f, ok := fsys[e.file]
				if !ok || !bytes.Contains(f.Data, []byte(e.old)) {
					t.Fatalf("the edit no longer applies: %s has no %q", e.file, e.old)
				}
				f.Data = bytes.Replace(f.Data, []byte(e.old), []byte(e.new), 1)
			}
			problems := checkAll(fsys)
			for _, p := range problems {
				if strings.Contains(p.Error(), m.want) {
					return
				}
			}
			t.Errorf("no problem mentions %q; got %d:", m.want, len(problems))
			for _, p := range problems {
				t.Log(p)
			}
		})
	}
}

// bundle is everything under deploy/, decoded.
type bundle struct {
	fsys fs.FS
	kust kustomization
	// yamlFiles are the names of the manifests in k8s/, kustomization
	// and examples excepted.
	yamlFiles, exampleFiles []string

	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	jobs         map[string]*batchv1.Job
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret // from *.example.yaml only
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	netpols      map[string]*networkingv1.NetworkPolicy
	namespaces   map[string]*corev1.Namespace

	// keygen is what `lethe keygen` wrote, by file name: the content of
	// Secret lethe-keys.
	keygen map[string]string
}

// keysSecret is made from `lethe keygen` output; its example holds
// placeholders only.
const keysSecret = "lethe-keys"

// kustomization is the part of kustomize's Kustomization these files use.
// Strict decoding rejects the rest, so a new field means a new check.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

// problems collects what the checks find.
type problems []error

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// checkAll loads the files of fsys (laid out like deploy/) and runs every
// check.
func checkAll(fsys fs.FS) problems {
	var p problems
	b := load(fsys, &p)
	for _, check := range []func(*bundle, *problems){
		checkKustomization, checkSelectors, checkReferences, checkSecurity,
		checkLethe, checkAutoscalers, checkNATS, checkDockerfile, checkPostgres,
	} {
		check(b, &p)
	}
	return p
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func load(fsys fs.FS, p *problems) *bundle {
	b := &bundle{fsys: fsys,
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		jobs: map[string]*batchv1.Job{}, services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, netpols: map[string]*networkingv1.NetworkPolicy{},
		namespaces: map[string]*corev1.Namespace{},
	}
	files, err := fs.Glob(fsys, "k8s/*.yaml")
	if err != nil || len(files) == 0 {
		p.add("k8s/: no manifests (%v)", err)
	}
	for _, f := range files {
		name := path.Base(f)
		body, err := fs.ReadFile(fsys, f)
		if err != nil {
			p.add("%s: %v", f, err)
			continue
		}
		if name == "kustomization.yaml" {
			if err := yaml.UnmarshalStrict(body, &b.kust); err != nil {
				p.add("%s: %v", f, err)
			}
			continue
		}
		example := strings.HasSuffix(name, ".example.yaml")
		if example {
			b.exampleFiles = append(b.exampleFiles, name)
		} else {
			b.yamlFiles = append(b.yamlFiles, name)
		}
		for i, d := range docSeparator.Split(string(body), -1) {
			b.decode(fmt.Sprintf("%s (document %d)", f, i+1), []byte(d), example, p)
		}
	}
	b.keygen = runKeygen(p)
	return b
}

// decode decodes one YAML document strictly into the API type its
// apiVersion and kind name.
func (b *bundle) decode(where string, doc []byte, example bool, p *problems) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		p.add("%s: %v", where, err)
		return
	}
	if tm.APIVersion == "" && tm.Kind == "" {
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			p.add("%s: no apiVersion and kind", where)
		}
		return
	}
	var obj metav1.Object
	var into func(string)
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		obj, into = o, func(n string) { b.deployments[n] = o }
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		obj, into = o, func(n string) { b.statefulSets[n] = o }
	case "batch/v1 Job":
		o := &batchv1.Job{}
		obj, into = o, func(n string) { b.jobs[n] = o }
	case "v1 Service":
		o := &corev1.Service{}
		obj, into = o, func(n string) { b.services[n] = o }
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		obj, into = o, func(n string) { b.configMaps[n] = o }
	case "v1 Secret":
		o := &corev1.Secret{}
		obj, into = o, func(n string) {
			if !example {
				p.add("%s: Secret %s: real secrets are made with kubectl create secret, not kept here (see secrets.example.yaml)", where, n)
			}
			b.secrets[n] = o
		}
	case "v1 Namespace":
		o := &corev1.Namespace{}
		obj, into = o, func(n string) { b.namespaces[n] = o }
	case "policy/v1 PodDisruptionBudget":
		o := &policyv1.PodDisruptionBudget{}
		obj, into = o, func(n string) { b.pdbs[n] = o }
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o := &autoscalingv2.HorizontalPodAutoscaler{}
		obj, into = o, func(n string) { b.hpas[n] = o }
	case "networking.k8s.io/v1 NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		obj, into = o, func(n string) { b.netpols[n] = o }
	default:
		p.add("%s: unknown kind %s %s", where, tm.APIVersion, tm.Kind)
		return
	}
	if example && tm.Kind != "Secret" {
		p.add("%s: example files hold Secrets only, not %s", where, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		p.add("%s: %s: %v", where, tm.Kind, err)
		return
	}
	name := obj.GetName()
	if name == "" {
		p.add("%s: %s without metadata.name", where, tm.Kind)
		return
	}
	if obj.GetNamespace() != "" {
		p.add("%s: %s %s: leave metadata.namespace to kustomization.yaml", where, tm.Kind, name)
	}
	if b.has(tm.Kind, name) {
		p.add("%s: %s %s is defined twice", where, tm.Kind, name)
	}
	into(name)
}

func (b *bundle) has(kind, name string) bool {
	switch kind {
	case "Deployment":
		return b.deployments[name] != nil
	case "StatefulSet":
		return b.statefulSets[name] != nil
	case "Job":
		return b.jobs[name] != nil
	case "Service":
		return b.services[name] != nil
	case "ConfigMap":
		return b.configMaps[name] != nil
	case "Secret":
		return b.secrets[name] != nil
	case "Namespace":
		return b.namespaces[name] != nil
	case "PodDisruptionBudget":
		return b.pdbs[name] != nil
	case "HorizontalPodAutoscaler":
		return b.hpas[name] != nil
	case "NetworkPolicy":
		return b.netpols[name] != nil
	}
	return false
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(append(out, line...), '\n')
		}
	}
	return out
}

// runKeygen runs `lethe keygen` and returns the files it wrote.
func runKeygen(p *problems) map[string]string {
	dir, err := os.MkdirTemp("", "lethe-keygen-")
	if err != nil {
		p.add("keygen: %v", err)
		return nil
	}
	defer os.RemoveAll(dir)
	var stderr bytes.Buffer
	if code := app.Run(context.Background(), []string{"lethe", "keygen", "--out", dir + "/keys"}, os.Getenv, &bytes.Buffer{}, &stderr); code != 0 {
		p.add("lethe keygen: exit %d: %s", code, stderr.String())
		return nil
	}
	entries, err := os.ReadDir(dir + "/keys")
	if err != nil {
		p.add("keygen: %v", err)
		return nil
	}
	out := map[string]string{}
	for _, e := range entries {
		body, err := os.ReadFile(dir + "/keys/" + e.Name())
		if err != nil {
			p.add("keygen: %v", err)
		}
		out[e.Name()] = string(body)
	}
	return out
}

// workload is a Deployment, StatefulSet or Job: something that runs pods.
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector // nil for Jobs
	template   *corev1.PodTemplateSpec
	// claims are a StatefulSet's volumeClaimTemplates, usable as volumes.
	claims []string
}

func (w workload) String() string { return w.kind + " " + w.name }

func (b *bundle) workloads() []workload {
	var ws []workload
	for _, n := range sortedKeys(b.deployments) {
		d := b.deployments[n]
		ws = append(ws, workload{kind: "Deployment", name: n, selector: d.Spec.Selector, template: &d.Spec.Template})
	}
	for _, n := range sortedKeys(b.statefulSets) {
		s := b.statefulSets[n]
		w := workload{kind: "StatefulSet", name: n, selector: s.Spec.Selector, template: &s.Spec.Template}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Name)
		}
		ws = append(ws, w)
	}
	for _, n := range sortedKeys(b.jobs) {
		ws = append(ws, workload{kind: "Job", name: n, template: &b.jobs[n].Spec.Template})
	}
	return ws
}

// containers are a pod's init containers and containers.
func containers(spec *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// secretValue is a key of a Secret as a container would see it: lethe-keys
// from `lethe keygen`, the others from their examples.
func (b *bundle) secretValue(name, key string) (string, bool) {
	if name == keysSecret {
		v, ok := b.keygen[key]
		return v, ok
	}
	s := b.secrets[name]
	if s == nil {
		return "", false
	}
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

func (b *bundle) secretKeys(name string) []string {
	s := b.secrets[name]
	if s == nil {
		return nil
	}
	keys := sortedKeys(s.StringData)
	for k := range s.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
