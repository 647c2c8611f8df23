// Package measure holds what the benchmark (cmd/auditbench) measures with
// and reports in: figures and the report, percentiles of latencies, CPU
// time of the process and of the machine, and a description of the machine.
package measure

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Figure is one measured number.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Note  string  `json:"note,omitempty"`
	// Goal is the target the figure is held to ("≥ 20,000 events/s"), and
	// Met whether this run reached it; both absent for figures without one.
	Goal string `json:"goal,omitempty"`
	Met  *bool  `json:"met,omitempty"`
}

// Report is what a run prints and writes.
type Report struct {
	Started  time.Time         `json:"started"`
	Machine  map[string]any    `json:"machine"`
	Versions map[string]string `json:"versions"`
	Settings map[string]any    `json:"settings"`
	Figures  []Figure          `json:"figures"`
}

// Add records a figure and prints it as a line of the table.
func (r *Report) Add(name string, value float64, unit, note string) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: value, Unit: unit, Note: note})
	fmt.Printf("%-58s %12.1f %-8s %s\n", name, value, unit, note)
}

// Check records a figure held to goal, met or not, and prints it as a
// line of the table with the verdict.
func (r *Report) Check(name string, value float64, unit, note, goal string, met bool) {
	r.Figures = append(r.Figures, Figure{Name: name, Value: value, Unit: unit, Note: note, Goal: goal, Met: &met})
	verdict := "met"
	if !met {
		verdict = "NOT MET"
	}
	fmt.Printf("%-58s %12.1f %-8s goal %s: %s; %s\n", name, value, unit, goal, verdict, note)
}

// Machine describes the machine a run measured: cores, memory, CPU model.
func Machine() map[string]any {
	m := map[string]any{"cores": runtime.NumCPU(), "goos": runtime.GOOS, "goarch": runtime.GOARCH}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				m["memory"] = strings.TrimSpace(strings.TrimPrefix(line, "MemTotal:"))
			}
		}
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "model name") {
				m["cpu"] = strings.TrimSpace(line[strings.Index(line, ":")+1:])
				break
			}
		}
	}
	return m
}

// Versions are the Go and dependency versions a run measured.
func Versions() map[string]string {
	v := map[string]string{"go": runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			for _, name := range []string{"nats-server/v2", "nats.go", "pgx/v5", "gqlgen"} {
				if strings.HasSuffix(d.Path, name) {
					v[name] = d.Version
				}
			}
		}
	}
	return v
}

// Percentile p of sorted durations, in milliseconds.
func Percentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*p), len(sorted)-1)
	return float64(sorted[i].Microseconds()) / 1000
}

// SortDurations sorts d in place and returns it.
func SortDurations(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

// CPU is the CPU time spent so far by this process (auditd, embedded
// NATS and the bench clients) and by the whole machine (Postgres included).
type CPU struct {
	process time.Duration
	machine time.Duration
}

// ReadCPU reads both counters; machine is zero where /proc/stat is missing.
func ReadCPU() CPU {
	var r CPU
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	r.machine = MachineBusy()
	return r
}

// MachineBusy is the busy time of all CPUs since boot: the /proc/stat "cpu"
// line's user, nice, system, irq and softirq ticks. Idle, iowait and steal
// (time the hypervisor gave to other guests) are not work done here.
func MachineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0
	}
	var ticks int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 || i == 7 { // idle, iowait, steal
			continue
		}
		if i >= 8 { // guest time is already counted in user time
			break
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	const userHZ = 100 // fixed by the kernel ABI for /proc/stat
	return time.Duration(ticks) * time.Second / userHZ
}

// Since is the CPU time spent between r and now by the whole machine and
// by this process.
func (r CPU) Since() (machine, process time.Duration) {
	now := ReadCPU()
	return now.machine - r.machine, now.process - r.process
}

// PerEvent reports the CPU spent between r and now per event, in
// microseconds, for the machine and for this process.
func (r CPU) PerEvent(events float64) (machine, process float64) {
	now := ReadCPU()
	if events == 0 {
		return 0, 0
	}
	machine = float64(now.machine-r.machine) / float64(time.Microsecond) / events
	process = float64(now.process-r.process) / float64(time.Microsecond) / events
	return machine, process
}
