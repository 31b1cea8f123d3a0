package replica

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/tiers/calendar"
)

// collectors are the replica's own /metrics families, from its
// configuration: who it is, its calendar's holiday data, its certificates.
func collectors(cfg config.Config, cal *calendar.Calendar) []prometheus.Collector {
	cs := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cityhub_node_info",
			Help:        "The replica's node: raft id, group (the tier node it is a replica of), tier, jurisdiction (always 1; join on instance for the group).",
			ConstLabels: prometheus.Labels{"node": cfg.Node.ID, "group": cfg.Group(), "tier": cfg.Node.Tier, "jurisdiction": cfg.Node.Jurisdiction}},
			func() float64 { return 1 }),
	}
	if cal != nil {
		cs = append(cs, newCalendarCollector(cal))
	}
	return append(cs, newCertCollector(certFiles(cfg)))
}

// calendarCollector exports the years the working calendar has holiday
// data for: deadlines in a year without it count its holidays as working
// days (the alert CityhubCalendarHolidaysMissing).
type calendarCollector struct {
	years []int
	last  *prometheus.Desc
	days  *prometheus.Desc
}

func newCalendarCollector(cal *calendar.Calendar) *calendarCollector {
	return &calendarCollector{
		years: cal.HolidayYears(),
		last: prometheus.NewDesc("cityhub_calendar_holiday_data_last_year",
			"The last year the working calendar lists holidays for (0: none); deadlines past it ignore holidays.", nil, nil),
		days: prometheus.NewDesc("cityhub_calendar_holiday_data_years",
			"1 for each year the working calendar lists holidays for.", []string{"year"}, nil),
	}
}

func (c *calendarCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.last
	ch <- c.days
}

func (c *calendarCollector) Collect(ch chan<- prometheus.Metric) {
	last := 0
	for _, y := range c.years {
		last = max(last, y)
		ch <- prometheus.MustNewConstMetric(c.days, prometheus.GaugeValue, 1, strconv.Itoa(y))
	}
	ch <- prometheus.MustNewConstMetric(c.last, prometheus.GaugeValue, float64(last))
}

// certFile is one certificate the replica uses, by what it is for.
type certFile struct{ use, path string }

// certFiles are the configured certificates and CAs: the client API's
// (tls.*), the federation's (federation.tls.*) and the internal plane's
// (internal.tls.*, or the federation's).
func certFiles(cfg config.Config) []certFile {
	var fs []certFile
	add := func(use, path string) {
		if path != "" {
			fs = append(fs, certFile{use, path})
		}
	}
	if cfg.TLS.Enabled() {
		add("api", cfg.TLS.Cert)
		add("api-ca", cfg.TLS.CA)
	}
	if cfg.Federation.Enabled() && !cfg.Federation.Insecure {
		add("federation", cfg.Federation.TLS.Cert)
		add("federation-ca", cfg.Federation.TLS.CA)
	}
	if !cfg.Internal.Insecure {
		in := cfg.InternalTLS()
		add("internal", in.Cert)
		add("internal-ca", in.CA)
	}
	return fs
}

// certCollector reads each certificate file at every scrape (a rotated
// file shows its new expiry at once) and exports when it expires; an
// unreadable file is left out.
type certCollector struct {
	files  []certFile
	expiry *prometheus.Desc
}

func newCertCollector(files []certFile) *certCollector {
	return &certCollector{files: files, expiry: prometheus.NewDesc("cityhub_certificate_expiry_timestamp_seconds",
		"When a certificate the replica uses expires (its NotAfter, Unix seconds), by use (api, federation, internal, and their -ca) and subject; "+
			"a CA file's earliest-expiring certificate.", []string{"use", "subject"}, nil)}
}

func (c *certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.expiry }

func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.files {
		cert, err := earliestExpiry(f.path)
		if err != nil {
			// The file was read at start; one gone or replaced by a bad
			// one leaves its series out rather than failing the scrape.
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(cert.NotAfter.Unix()), f.use, cert.Subject.CommonName)
	}
}

// earliestExpiry is the certificate of a PEM file that expires first.
func earliestExpiry(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var first *x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if first == nil || c.NotAfter.Before(first.NotAfter) {
			first = c
		}
	}
	if first == nil {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return first, nil
}
