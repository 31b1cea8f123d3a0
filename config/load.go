package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// flagKeys maps the flags registered by BindFlags to configuration keys.
var flagKeys = map[string]string{
	"node-id":       "node.id",
	"data-dir":      "node.data_dir",
	"tier":          "node.tier",
	"jurisdiction":  "node.jurisdiction",
	"raft-addr":     "raft.addr",
	"grpc-addr":     "grpc.addr",
	"http-addr":     "http.addr",
	"internal-addr": "internal.addr",
	"bootstrap":     "raft.bootstrap",
	"join":          "raft.join",
	"catalogue":     "catalogue.path",
	"log-level":     "log.level",
	"topology":      "federation.topology",
	"fed-node":      "federation.node",
	"fed-addr":      "federation.addr",
}

// BindFlags registers the common cityhubd flags on fs. Their defaults are
// shown in help output only: Load applies a flag only when the user set it,
// so an unset flag never overrides the file or the environment. --config is
// left to the caller.
func BindFlags(fs *pflag.FlagSet) {
	d := Default()
	fs.String("node-id", "", "node ID, [a-z0-9-]{1,32} (node.id)")
	fs.String("data-dir", "", "data directory (node.data_dir; default data/<node-id>)")
	fs.String("tier", d.Node.Tier, "tier: city, district, street or community (node.tier)")
	fs.String("jurisdiction", d.Node.Jurisdiction, "jurisdiction code: 6 digits for city/district, 9 for street, 12 for community (node.jurisdiction)")
	fs.String("raft-addr", d.Raft.Addr, "raft transport address host:port (raft.addr)")
	fs.String("grpc-addr", d.GRPC.Addr, "gRPC listen address host:port (grpc.addr)")
	fs.String("http-addr", d.HTTP.Addr, "HTTP gateway/metrics listen address host:port (http.addr)")
	fs.String("internal-addr", d.Internal.Addr, "internal listener for the group's replicas (write forwarding), host:port (internal.addr)")
	fs.Bool("bootstrap", false, "bootstrap a new raft group from raft.peers if there is no raft state (raft.bootstrap)")
	fs.StringSlice("join", nil, "gRPC addresses of existing members to join through, comma separated (raft.join; with authentication on, members listed in raft.peers with their internal_addr)")
	fs.String("catalogue", "", "service catalogue file; empty uses the embedded catalogue (catalogue.path)")
	fs.String("log-level", d.Log.Level, "log level: debug, info, warn or error (log.level)")
	fs.String("topology", "", "federation topology file; empty runs standalone (federation.topology)")
	fs.String("fed-node", "", "this node's name in the federation topology (federation.node)")
	fs.String("fed-addr", d.Federation.Addr, "federation listener for the parent and children host:port (federation.addr)")
}

// Load builds the configuration from, lowest precedence first: Default(),
// the YAML file at path (skipped when path is ""), CITYHUB_* environment
// variables, and the flags in flags that the user actually set (flags may be
// nil). Unknown keys in the file are an error. Derived defaults are filled
// (ApplyDerived) and the result is validated; on any error the zero Config is
// returned with an error naming the offending keys.
func Load(path string, flags *pflag.FlagSet) (Config, error) {
	v := viper.New()
	// Every key needs a default: AutomaticEnv only consults the environment
	// for keys viper already knows about.
	for key, val := range defaultSettings() {
		v.SetDefault(key, val)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		// Parse the file on its own first so unknown keys can be reported
		// with their full path before defaults and env are mixed in.
		fv := viper.New()
		fv.SetConfigType("yaml")
		if err := fv.ReadConfig(bytes.NewReader(data)); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
		if err := errors.Join(unknownKeys("", reflect.TypeFor[Config](), fv.AllSettings())...); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
		v.SetConfigType("yaml")
		if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
			return Config{}, fmt.Errorf("config: %s: %w", path, err)
		}
	}

	if flags != nil {
		flags.Visit(func(f *pflag.Flag) { // Visit: only flags that were set
			key, ok := flagKeys[f.Name]
			if !ok {
				return
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(key, sv.GetSlice())
			} else {
				v.Set(key, f.Value.String())
			}
		})
	}

	if errs := checkNumbers(v); len(errs) > 0 {
		return Config{}, fmt.Errorf("config: %w", errors.Join(errs...))
	}
	var cfg Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return Config{}, fmt.Errorf("config: %w", errors.Join(decodeErrors(v, err)...))
	}
	cfg.ApplyDerived()
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

// checkNumbers catches what the weakly typed decoder would silently accept:
// negative numbers for unsigned keys (they would wrap around) and bare
// numbers for durations (they would be nanoseconds).
func checkNumbers(v *viper.Viper) []error {
	defaults := defaultSettings()
	keys := make([]string, 0, len(defaults))
	for k := range defaults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		def := reflect.TypeOf(defaults[key])
		val := reflect.ValueOf(v.Get(key))
		if !val.IsValid() || val.Type() == def {
			continue
		}
		switch {
		case def == durationType && (val.CanInt() || val.CanUint() || val.CanFloat()):
			errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf("%v has no unit; write a duration such as \"500ms\" or \"2m\"", val)})
		case def.Kind() >= reflect.Uint && def.Kind() <= reflect.Uint64 &&
			(val.CanInt() && val.Int() < 0 || val.CanFloat() && val.Float() < 0):
			errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf("%v must not be negative", val)})
		}
	}
	return errs
}

// defaultSettings flattens Default() into dotted keys.
func defaultSettings() map[string]any {
	out := map[string]any{}
	flatten("", reflect.ValueOf(Default()), out)
	return out
}

var durationType = reflect.TypeFor[time.Duration]()

func flatten(prefix string, val reflect.Value, out map[string]any) {
	t := val.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := joinKey(prefix, f.Tag.Get("mapstructure"))
		fv := val.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			flatten(key, fv, out)
		case f.Type.Kind() == reflect.Slice && fv.IsNil():
			out[key] = reflect.MakeSlice(f.Type, 0, 0).Interface()
		default:
			out[key] = fv.Interface()
		}
	}
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// unknownKeys reports every key in data (as parsed from a file) that has no
// field in t, recursing into nested sections and lists of structs.
func unknownKeys(prefix string, t reflect.Type, data any) []error {
	switch {
	case t.Kind() == reflect.Struct && t != durationType:
		m, ok := data.(map[string]any)
		if !ok {
			return nil // wrong shape: the decoder reports it
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			fields[f.Tag.Get("mapstructure")] = f.Type
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var errs []error
		for _, k := range keys {
			key := joinKey(prefix, strings.ToLower(k))
			ft, ok := fields[strings.ToLower(k)]
			if !ok {
				errs = append(errs, &FieldError{Key: key, Msg: "unknown key"})
				continue
			}
			errs = append(errs, unknownKeys(key, ft, m[k])...)
		}
		return errs
	case t.Kind() == reflect.Slice:
		items, ok := data.([]any)
		if !ok {
			return nil
		}
		var errs []error
		for i, item := range items {
			errs = append(errs, unknownKeys(fmt.Sprintf("%s[%d]", prefix, i), t.Elem(), item)...)
		}
		return errs
	}
	return nil
}

// namedError matches mapstructure's *DecodeError without importing it.
type namedError interface {
	error
	Name() string
	Unwrap() error
}

// decodeErrors turns mapstructure's decode errors into one *FieldError per
// key, adding the offending value when viper can tell it.
func decodeErrors(v *viper.Viper, err error) []error {
	switch e := err.(type) {
	case interface{ Unwrap() []error }:
		var out []error
		for _, inner := range e.Unwrap() {
			out = append(out, decodeErrors(v, inner)...)
		}
		return out
	case namedError:
		var nested namedError
		if inner := e.Unwrap(); inner != nil && errors.As(inner, &nested) {
			return decodeErrors(v, inner)
		}
		msg := e.Unwrap().Error()
		if val := v.Get(e.Name()); val != nil {
			msg = fmt.Sprintf("%q: %s", fmt.Sprint(val), msg)
		}
		return []error{&FieldError{Key: e.Name(), Msg: msg}}
	}
	var named namedError
	if inner := errors.Unwrap(err); inner != nil && errors.As(inner, &named) {
		return decodeErrors(v, inner)
	}
	return []error{err}
}
