package config

import (
	"encoding"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// EnvPrefix prefixes every environment override: SWITCHYARD_HEALTH_INTERVAL
// overrides health.interval.
const EnvPrefix = "SWITCHYARD"

// Load reads the configuration file at path (empty: $SWITCHYARD_CONFIG, and
// if that is empty too, no file), applies environment overrides, normalizes
// and validates. Every error names the key and the offending value.
func Load(path string) (*Config, error) {
	v := viper.New()
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	def := Default()
	for _, k := range Keys() {
		// Binding every key (not only AutomaticEnv) makes env-only
		// configuration work for keys that have no default.
		if err := v.BindEnv(k); err != nil {
			return nil, err
		}
	}
	setDefaults(v, def)

	if path == "" {
		path = os.Getenv(EnvPrefix + "_CONFIG")
	}
	if path != "" {
		v.SetConfigFile(path)
		if filepath := strings.ToLower(path); !strings.HasSuffix(filepath, ".yaml") && !strings.HasSuffix(filepath, ".yml") && !strings.HasSuffix(filepath, ".json") && !strings.HasSuffix(filepath, ".toml") {
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("reading config file %s: %w", path, err)
		}
	}

	var c Config
	err := v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		jsonListHook,
		textHook,
		scalarHook,
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return nil, fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	if err := c.Normalize(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

// jsonListHook lets list-of-object keys (services, routes) be given as JSON
// in an environment variable: SWITCHYARD_ROUTES='[{"path_prefix":"/","service":"web"}]'.
func jsonListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.Struct || isText(to) {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []any{}, nil
	}
	var out []any
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("want a JSON list of objects: %v", err)
	}
	return out, nil
}

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// isText reports whether t is a value type with a syntax of its own
// (values.go): decoded with UnmarshalText, a leaf of the key tree.
func isText(t reflect.Type) bool {
	return reflect.PointerTo(t).Implements(textUnmarshalerType)
}

// textHook decodes the types of values.go from their text: a string (the
// environment, YAML), a number (unquoted YAML: expected_status: 200,
// jitter: 0.1) or a list of strings (YAML lists, joined with commas). The
// error quotes the bad value; mapstructure prefixes it with the key.
func textHook(from, to reflect.Type, data any) (any, error) {
	if from == to || !isText(to) {
		return data, nil
	}
	var text string
	switch rv := reflect.ValueOf(data); {
	case rv.Kind() == reflect.String:
		text = rv.String()
	case rv.Kind() >= reflect.Int && rv.Kind() <= reflect.Float64:
		text = fmt.Sprint(data)
	case rv.Kind() == reflect.Slice:
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(rv.Index(i).Interface())
		}
		text = strings.Join(parts, ",")
	default:
		return data, nil
	}
	out := reflect.New(to)
	if err := out.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
		return nil, fmt.Errorf("invalid value %q: %v", text, err)
	}
	return out.Elem().Interface(), nil
}

// scalarHook parses strings (from the environment or quoted YAML) into
// durations, numbers and booleans with errors that quote the bad value;
// mapstructure prefixes them with the key.
func scalarHook(from, to reflect.Type, data any) (any, error) {
	if to == durationType && from != durationType && from.Kind() >= reflect.Int && from.Kind() <= reflect.Float64 {
		return nil, fmt.Errorf("invalid value %v: want a duration with a unit, such as 5s", data)
	}
	if from.Kind() != reflect.String {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	switch {
	case to == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q: want a duration such as 5s or 250ms", s)
		}
		return d, nil
	case to.Kind() >= reflect.Int && to.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q: want a whole number", s)
		}
		return n, nil
	case to.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q: want a number", s)
		}
		return f, nil
	case to.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("invalid value %q: want true or false", s)
		}
		return b, nil
	}
	return data, nil
}

var quotedKey = regexp.MustCompile(`^'([^']+)' (.*)$`)

// cleanDecodeError turns mapstructure's multi-line report into one line per
// problem, each naming the key and value.
func cleanDecodeError(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "decoding failed due to the following error(s):")
	var parts []string
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if m := quotedKey.FindStringSubmatch(line); m != nil {
			line = m[1] + ": " + m[2]
		}
		if line != "" {
			parts = append(parts, line)
		}
	}
	if len(parts) == 0 {
		return msg
	}
	return strings.Join(parts, "; ")
}

// leaves calls fn for every leaf field of rv (a struct) with its
// mapstructure key path; nested structs are walked, lists are leaves.
func leaves(prefix string, rv reflect.Value, fn func(key string, v reflect.Value)) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		key := f.Tag.Get("mapstructure")
		if key == "" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		if f.Type.Kind() == reflect.Struct && !isText(f.Type) {
			leaves(key, rv.Field(i), fn)
			continue
		}
		fn(key, rv.Field(i))
	}
}

// setDefaults registers every leaf of def under its key path. Lists have no
// default; their environment binding suffices.
func setDefaults(v *viper.Viper, def Config) {
	leaves("", reflect.ValueOf(def), func(key string, fv reflect.Value) {
		if fv.Kind() != reflect.Slice {
			v.SetDefault(key, fv.Interface())
		}
	})
}

// Keys lists every configuration key path that can be set from the
// environment, in declaration order (services and routes as whole lists).
func Keys() []string {
	var out []string
	leaves("", reflect.ValueOf(Config{}), func(key string, _ reflect.Value) { out = append(out, key) })
	return out
}

// EnvName returns the environment variable that overrides key.
func EnvName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}
