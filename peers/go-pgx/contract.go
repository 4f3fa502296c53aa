package main

// The contract's parameters, errors and JSON (core::params, core::error, core::model): parse,
// don't validate. Handlers take the raw path segment or query string and get either a valid
// value or the contract's 400 with core's message, word for word.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	jsonContentType   = "application/json"
	allowedMethods    = "GET, HEAD"
	retryAfterSeconds = "1"
	int4Max           = math.MaxInt32
)

// apiError is a failure with the status and the per-parameter messages the contract gives it.
type apiError struct {
	status int
	errors map[string]string
}

func (err *apiError) Error() string { return fmt.Sprintf("%d: %v", err.status, err.errors) }

func invalid(parameter, message string) *apiError {
	return &apiError{400, map[string]string{parameter: message}}
}

var (
	errContactNotFound     = &apiError{404, map[string]string{"contact_id": "contact not found"}}
	errRouteNotFound       = &apiError{404, map[string]string{"request": "no such path"}}
	errMethodNotAllowed    = &apiError{405, map[string]string{"request": "method not allowed"}}
	errDatabaseUnavailable = &apiError{503, map[string]string{"request": "database unavailable, retry later"}}
	errInternal            = &apiError{500, map[string]string{"request": "internal server error"}}
	errorBodyOfSerializing = []byte(`{"status":500,"errors":{"request":"internal server error"}}`)
)

// body is `{"status":S,"errors":{...}}` with the keys in order, as core's BTreeMap has them.
func (err *apiError) body() []byte {
	keys := make([]string, 0, len(err.errors))
	for key := range err.errors {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var out bytes.Buffer
	fmt.Fprintf(&out, `{"status":%d,"errors":{`, err.status)
	for index, key := range keys {
		if index > 0 {
			out.WriteByte(',')
		}
		out.Write(toJSON(key))
		out.WriteByte(':')
		out.Write(toJSON(err.errors[key]))
	}
	out.WriteString("}}")
	return out.Bytes()
}

// toJSON is serde_json's compact form for the contract's bodies: encoding/json without its HTML
// escaping and without the newline its Encoder ends with.
func toJSON(value interface{}) []byte {
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(value); err != nil {
		logAt(levelError, "response serialization failed: %v", err)
		return errorBodyOfSerializing
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n"))
}

// Seconds is a duration in seconds written as serde_json (the ryu crate) writes an f64: the
// shortest digits that round-trip, laid out as `0.000015`, `1e-7`, `12.0`, where encoding/json
// would write `1.5e-05`, `1e-07`, `12`.
type Seconds float64

func (seconds Seconds) MarshalJSON() ([]byte, error) {
	return []byte(formatFloat(float64(seconds))), nil
}

func formatFloat(value float64) string {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return "null"
	}
	if value == 0 {
		if math.Signbit(value) {
			return "-0.0"
		}
		return "0.0"
	}
	sign := ""
	if value < 0 {
		sign, value = "-", -value
	}
	// d.ddddde±XX: the shortest round-trip digits and the decimal exponent.
	scientific := strconv.FormatFloat(value, 'e', -1, 64)
	mantissa, exponentText, _ := strings.Cut(scientific, "e")
	digits := strings.Replace(mantissa, ".", "", 1)
	exponent, _ := strconv.Atoi(exponentText)
	// value = 0.DIGITS x 10^point; ryu's cases, in its order.
	point := exponent + 1
	length := len(digits)
	var text string
	switch {
	case 0 <= point-length && point <= 16:
		text = digits + strings.Repeat("0", point-length) + ".0"
	case 0 < point && point <= 16:
		text = digits[:point] + "." + digits[point:]
	case -5 < point && point <= 0:
		text = "0." + strings.Repeat("0", -point) + digits
	case length == 1:
		text = fmt.Sprintf("%se%d", digits, point-1)
	default:
		text = fmt.Sprintf("%s.%se%d", digits[:1], digits[1:], point-1)
	}
	return sign + text
}

// parseBounded reads a decimal integer of ASCII digits only (no sign, no spaces) within
// minimum..=maximum; false for anything else, more than 20 digits included.
func parseBounded(text string, minimum, maximum uint64) (uint64, bool) {
	if text == "" || len(text) > 20 {
		return 0, false
	}
	for index := 0; index < len(text); index++ {
		if text[index] < '0' || text[index] > '9' {
			return 0, false
		}
	}
	value, err := strconv.ParseUint(text, 10, 64)
	if err != nil || value < minimum || value > maximum {
		return 0, false
	}
	return value, true
}

func rangeMessage(minimum, maximum uint64) string {
	return fmt.Sprintf("must be an integer from %d to %d", minimum, maximum)
}

// boundedParameter parses one bounded path parameter, or answers its 400.
func boundedParameter(parameter, text string, minimum, maximum uint64) (uint64, *apiError) {
	value, ok := parseBounded(text, minimum, maximum)
	if !ok {
		return 0, invalid(parameter, rangeMessage(minimum, maximum))
	}
	return value, nil
}

// `/contacts/{contact_id}`: a positive PostgreSQL integer.
func parseContactID(text string) (int32, *apiError) {
	value, err := boundedParameter("contact_id", text, 1, int4Max)
	return int32(value), err
}

// `/fibonacci/{n}`: small enough that naive recursion ends.
func parseFibonacciN(text string) (uint32, *apiError) {
	value, err := boundedParameter("n", text, 0, 40)
	return uint32(value), err
}

// `/test/*-cpubound/{iterations}`: repetitions of the CPU workload.
func parseIterations(text string) (uint32, *apiError) {
	value, err := boundedParameter("iterations", text, 1, 10_000)
	return uint32(value), err
}

// `/test/*-iobound/{millis}`: how long to wait, up to a minute.
func parseMillis(text string) (uint64, *apiError) {
	return boundedParameter("millis", text, 0, 60_000)
}

const (
	defaultLimit     = 100
	maxLimit         = 200
	maxOffset        = int4Max
	maxPrefixLetters = 100
)

// pageRequest is the query of `GET /contacts`. starts is the validated prefix ("" when absent):
// 1 to 100 letters, digits and spaces, so that no LIKE wildcard reaches the database.
type pageRequest struct {
	limit, offset int64
	starts        string
	hasStarts     bool
}

// likePattern is matched against lower(last_name): the lower-cased prefix and `%`.
func (page pageRequest) likePattern() string {
	return strings.ToLower(page.starts) + "%"
}

// isAlphanumeric is Rust's char::is_alphanumeric: the Alphabetic property (letters, letter
// numbers and Other_Alphabetic marks) or a numeric category (Nd, Nl, No).
func isAlphanumeric(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Other_Alphabetic, r)
}

func parseLastNamePrefix(text string) (string, *apiError) {
	letters := utf8.RuneCountInString(text)
	if letters < 1 || letters > maxPrefixLetters {
		return "", invalid("starts", fmt.Sprintf("must be 1 to %d characters", maxPrefixLetters))
	}
	for _, r := range text {
		if r != ' ' && !isAlphanumeric(r) {
			return "", invalid("starts", "may contain only letters, digits and spaces")
		}
	}
	return text, nil
}

// parsePageRequest parses the raw query string (without `?`), percent-encoded as it arrived.
// Unknown parameters are ignored; a repeated parameter takes its last value; every invalid value
// is reported, not just the first.
func parsePageRequest(rawQuery string) (pageRequest, *apiError) {
	given := map[string]string{}
	for _, piece := range strings.Split(rawQuery, "&") {
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		name = formDecode(name)
		if name == "limit" || name == "offset" || name == "starts" {
			given[name] = formDecode(value)
		}
	}
	page := pageRequest{limit: defaultLimit}
	errors := map[string]string{}
	if text, ok := given["limit"]; ok {
		value, valid := parseBounded(text, 1, maxLimit)
		if valid {
			page.limit = int64(value)
		} else {
			errors["limit"] = rangeMessage(1, maxLimit)
		}
	}
	if text, ok := given["offset"]; ok {
		value, valid := parseBounded(text, 0, maxOffset)
		if valid {
			page.offset = int64(value)
		} else {
			errors["offset"] = rangeMessage(0, maxOffset)
		}
	}
	if text, ok := given["starts"]; ok {
		prefix, err := parseLastNamePrefix(text)
		if err != nil {
			for key, message := range err.errors {
				errors[key] = message
			}
		} else {
			page.starts, page.hasStarts = prefix, true
		}
	}
	if len(errors) > 0 {
		return page, &apiError{400, errors}
	}
	return page, nil
}

// formDecode decodes application/x-www-form-urlencoded as the url crate does (core's parser):
// `+` is a space, `%XX` a byte, a malformed escape kept as it is, invalid UTF-8 replaced.
func formDecode(text string) string {
	var out []byte
	for index := 0; index < len(text); index++ {
		switch char := text[index]; {
		case char == '+':
			out = append(out, ' ')
		case char == '%' && index+2 < len(text) && isHex(text[index+1]) && isHex(text[index+2]):
			value, _ := strconv.ParseUint(text[index+1:index+3], 16, 8)
			out = append(out, byte(value))
			index += 2
		default:
			out = append(out, char)
		}
	}
	return strings.ToValidUTF8(string(out), "\uFFFD")
}

func isHex(char byte) bool {
	return ('0' <= char && char <= '9') || ('a' <= char && char <= 'f') || ('A' <= char && char <= 'F')
}
