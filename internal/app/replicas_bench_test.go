package app_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// BenchmarkReplicas files requests at 1, 2 and 3 `lethe serve` processes
// (the real binary) sharing one PostgreSQL and one NATS server, each
// request erased by the sql and filesystem connectors, and reports
// requests completed per second. Next to it, the baseline measured in the
// same run: single-row INSERT commits per second on the same PostgreSQL.
//
// To explain the limit it also reports where the machine's CPU went during
// the run: busy (share of all cores), and the shares of the Lethe
// processes, of PostgreSQL's processes, and of this process (the HTTP
// clients and the in-process NATS server).
//
//	go test ./internal/app -run '^$' -bench Replicas -benchtime 1500x
func BenchmarkReplicas(b *testing.B) {
	b.Run("baseline=insert_commits", benchInsertCommits)
	bin := buildBinary(b)
	for _, replicas := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			ns := testenv.NATS(b)
			tg := newTarget(b)
			in := newInstance(b, ns.ClientURL(), tg.connectorsYAML(), "")
			emails := make([]string, b.N)
			for i := range emails {
				emails[i] = fmt.Sprintf("r%d-%06d@example.com", replicas, i)
			}
			tg.seedMany(b, emails)
			var procs []*proc
			var bases []string
			for r := range replicas {
				i := in
				if r > 0 {
					i = in.replica(b)
				}
				p := startProc(b, fmt.Sprintf("serve-%d", r), bin, []string{"serve", "--config", i.configPath}, nil)
				waitProcHealthy(b, p, "http://"+i.addr)
				procs = append(procs, p)
				bases = append(bases, "http://"+i.addr)
			}
			db, err := sql.Open("pgx", in.storeURL)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()

			cpu := startCPU(procs)
			b.ResetTimer()
			start := time.Now()
			parallel(b.N, func(i int) {
				if _, err := fileAt(bases, in.adminToken, emails[i], i); err != nil {
					b.Error(err)
				}
			})
			for {
				var done int
				if err := db.QueryRow(`SELECT count(*) FROM requests WHERE status = 'completed'`).Scan(&done); err != nil {
					b.Fatal(err)
				}
				if done == b.N {
					break
				}
				if time.Since(start) > 10*time.Minute {
					b.Fatalf("%d of %d completed after 10 minutes", done, b.N)
				}
				time.Sleep(20 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			use := cpu.stop()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "requests/s")
			b.ReportMetric(use.busy, "cpu_busy")
			b.ReportMetric(use.lethe, "cpu_lethe")
			b.ReportMetric(use.postgres, "cpu_postgres")
			b.ReportMetric(use.self, "cpu_test+nats")
		})
	}
}

func benchInsertCommits(b *testing.B) {
	db, err := sql.Open("pgx", testenv.PostgresSchema(b))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE bench (id bigserial PRIMARY KEY, v text)`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := db.Exec(`INSERT INTO bench (v) VALUES ('x')`); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
}

// cpuMeter samples CPU time, in clock ticks, from /proc.
type cpuMeter struct {
	procs                           []*proc
	start                           time.Time
	total0, idle0, lethe0, pg0, me0 float64
}

type cpuUse struct{ busy, lethe, postgres, self float64 }

func startCPU(procs []*proc) *cpuMeter {
	m := &cpuMeter{procs: procs, start: time.Now()}
	m.total0, m.idle0 = machineTicks()
	m.lethe0, m.pg0, m.me0 = m.sample()
	return m
}

// stop returns each part's share of all the machine's CPU time since start.
func (m *cpuMeter) stop() cpuUse {
	total, idle := machineTicks()
	lethe, pg, me := m.sample()
	all := total - m.total0
	if all <= 0 {
		return cpuUse{}
	}
	return cpuUse{busy: 1 - (idle-m.idle0)/all, lethe: (lethe - m.lethe0) / all,
		postgres: (pg - m.pg0) / all, self: (me - m.me0) / all}
}

func (m *cpuMeter) sample() (lethe, postgres, self float64) {
	for _, p := range m.procs {
		lethe += procTicks(p.cmd.Process.Pid)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if comm, err := os.ReadFile(filepath.Join(d, "comm")); err == nil && strings.TrimSpace(string(comm)) == "postgres" {
			pid, _ := strconv.Atoi(filepath.Base(d))
			postgres += procTicks(pid)
		}
	}
	return lethe, postgres, procTicks(os.Getpid())
}

// procTicks is a process's user plus system time in clock ticks.
func procTicks(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u + st
}

// machineTicks is the machine's total and idle CPU time in clock ticks.
func machineTicks() (total, idle float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total, idle
}
