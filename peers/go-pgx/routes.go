package main

// The contract's routes on net/http: one goroutine per request (net/http's own), one handler
// that matches the path, answers the contract's 404 and 405 itself (net/http's ServeMux would
// redirect `/path/` and answer text), and renders every error as the contract's JSON.
//
// In Go there is no event loop to block: `/test/sync-cpubound` and `/test/offload-cpubound` both
// compute on the request's goroutine, and both waits park it (time.Sleep). The runtime preempts
// goroutines, so GOMAXPROCS threads share the CPU work and a sleeping request holds no thread.

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v4/pgxpool"
)

// rawJSON is a body that is already the contract's bytes (the OpenAPI document).
type rawJSON []byte

// handler answers one route from its path parameters (percent-decoded); it returns the body,
// an *apiError, or a database error.
type handler func(app *app, request *http.Request, parameters []string) (interface{}, error)

type route struct {
	// Path segments; "{}" is a parameter.
	pattern []string
	handle  handler
}

var routes = []route{
	{[]string{"version"}, handleVersion},
	{[]string{"types"}, handleTypes},
	{[]string{"contacts"}, handleContacts},
	{[]string{"contacts", "{}"}, handleContact},
	{[]string{"fibonacci", "{}"}, handleFibonacci},
	{[]string{"test", "calibrate"}, handleCalibrate},
	{[]string{"test", "sync-cpubound", "{}"}, handleCPUBound},
	{[]string{"test", "offload-cpubound", "{}"}, handleCPUBound},
	{[]string{"test", "async-iobound", "{}"}, handleWait},
	{[]string{"test", "blocking-iobound", "{}"}, handleWait},
	{[]string{"test", "resmon"}, handleResmon},
	{[]string{"openapi.json"}, handleOpenAPI},
}

// match finds the route of a raw (percent-encoded) path: one trailing slash is allowed, no
// empty segment, parameters decoded (one that cannot be is empty, which no parameter accepts).
func match(rawPath string) (*route, []string) {
	if len(rawPath) > 1 && strings.HasSuffix(rawPath, "/") {
		rawPath = rawPath[:len(rawPath)-1]
	}
	segments := strings.Split(strings.TrimPrefix(rawPath, "/"), "/")
	for index := range routes {
		if parameters, ok := routes[index].match(segments); ok {
			return &routes[index], parameters
		}
	}
	return nil, nil
}

func (candidate *route) match(segments []string) ([]string, bool) {
	if len(candidate.pattern) != len(segments) {
		return nil, false
	}
	var parameters []string
	for position, part := range candidate.pattern {
		segment := segments[position]
		switch {
		case part == "{}" && segment != "":
			decoded, err := url.PathUnescape(segment)
			if err != nil {
				decoded = ""
			}
			parameters = append(parameters, decoded)
		case part != segment:
			return nil, false
		}
	}
	return parameters, true
}

type app struct {
	settings Settings
	pool     *pgxpool.Pool
}

func (app *app) ServeHTTP(writer http.ResponseWriter, request *http.Request) {
	defer func() {
		if panicked := recover(); panicked != nil {
			logAt(levelError, "panic in %s %s: %v", request.Method, request.URL.Path, panicked)
			writeError(writer, errInternal)
		}
	}()
	found, parameters := match(request.URL.EscapedPath())
	if found == nil {
		writeError(writer, errRouteNotFound)
		return
	}
	if request.Method != http.MethodGet && request.Method != http.MethodHead {
		writeError(writer, errMethodNotAllowed)
		return
	}
	body, err := found.handle(app, request, parameters)
	var failure *apiError
	var down unavailable
	switch {
	case err == nil:
	case errors.As(err, &failure):
		writeError(writer, failure)
		return
	case errors.As(err, &down):
		logAt(levelWarn, "%v", err)
		writeError(writer, errDatabaseUnavailable)
		return
	default:
		logAt(levelError, "database error in %s %s: %v", request.Method, request.URL.Path, err)
		writeError(writer, errInternal)
		return
	}
	if raw, ok := body.(rawJSON); ok {
		writeJSON(writer, http.StatusOK, raw)
	} else {
		writeJSON(writer, http.StatusOK, toJSON(body))
	}
}

// writeJSON sends a body with its length: net/http would send a HEAD's answer without
// Content-Length, and a GET's longer than 2 KiB chunked. net/http drops the body of a HEAD.
func writeJSON(writer http.ResponseWriter, status int, body []byte) {
	header := writer.Header()
	header.Set("Content-Type", jsonContentType)
	header.Set("Content-Length", strconv.Itoa(len(body)))
	writer.WriteHeader(status)
	_, _ = writer.Write(body)
}

func writeError(writer http.ResponseWriter, failure *apiError) {
	switch failure.status {
	case http.StatusMethodNotAllowed:
		writer.Header().Set("Allow", allowedMethods)
	case http.StatusServiceUnavailable:
		writer.Header().Set("Retry-After", retryAfterSeconds)
	}
	writeJSON(writer, failure.status, failure.body())
}

func handleVersion(app *app, _ *http.Request, _ []string) (interface{}, error) {
	return versionInfo{version, variantName}, nil
}

// withDatabase runs work on a connection checked out for the request, released when it ends.
func withDatabase(app *app, work func(db *requestDB) (interface{}, error)) (interface{}, error) {
	db := newRequestDB(app.pool, &app.settings)
	defer db.release()
	if err := db.checkout(false); err != nil {
		return nil, err
	}
	return work(db)
}

func handleTypes(app *app, _ *http.Request, _ []string) (interface{}, error) {
	return withDatabase(app, func(db *requestDB) (interface{}, error) {
		types, err := queryRows(db, scanContactType, sqlListTypes)
		if err != nil {
			return nil, err
		}
		return page[contactType]{int64(len(types)), append([]contactType{}, types...)}, nil
	})
}

func handleContacts(app *app, request *http.Request, _ []string) (interface{}, error) {
	// Parsed before a connection is checked out: a 400 costs no connection.
	query, failure := parsePageRequest(request.URL.RawQuery)
	if failure != nil {
		return nil, failure
	}
	return withDatabase(app, func(db *requestDB) (interface{}, error) {
		var rows []contactRow
		var err error
		if query.hasStarts {
			rows, err = queryRows(db, scanPageRow, sqlContactsPageStarts, query.limit, query.offset, query.likePattern())
		} else {
			rows, err = queryRows(db, scanPageRow, sqlContactsPage, query.limit, query.offset)
		}
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			// The count rides on the page's rows; an empty page needs it alone.
			var count int64
			if query.hasStarts {
				count, err = queryCount(db, sqlCountContactsStarts, query.likePattern())
			} else {
				count, err = queryCount(db, sqlCountContacts)
			}
			return page[contact]{count, []contact{}}, err
		}
		ids := make([]int32, len(rows))
		for index, row := range rows {
			ids[index] = row.ContactID
		}
		contacts, err := contactsWithDetails(db, rows, ids)
		return page[contact]{rows[0].total, contacts}, err
	})
}

// contactsWithDetails runs the phones and emails statements for the rows' contacts.
func contactsWithDetails(db *requestDB, rows []contactRow, ids []int32) ([]contact, error) {
	phones, err := queryRows(db, scanDetail, sqlPhonesOfContacts, ids)
	if err != nil {
		return nil, err
	}
	emails, err := queryRows(db, scanDetail, sqlEmailsOfContacts, ids)
	if err != nil {
		return nil, err
	}
	return assembleContacts(rows, phones, emails), nil
}

func handleContact(app *app, _ *http.Request, parameters []string) (interface{}, error) {
	contactID, failure := parseContactID(parameters[0])
	if failure != nil {
		return nil, failure
	}
	return withDatabase(app, func(db *requestDB) (interface{}, error) {
		rows, err := queryRows(db, scanContactRow, sqlContactByID, contactID)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			return nil, errContactNotFound
		}
		contacts, err := contactsWithDetails(db, rows, []int32{contactID})
		if err != nil {
			return nil, err
		}
		return contacts[0], nil
	})
}

func handleFibonacci(_ *app, _ *http.Request, parameters []string) (interface{}, error) {
	n, failure := parseFibonacciN(parameters[0])
	if failure != nil {
		return nil, failure
	}
	return fibonacciBody{fibonacci(n)}, nil
}

func handleCalibrate(_ *app, _ *http.Request, _ []string) (interface{}, error) {
	return calibrate(), nil
}

func handleCPUBound(_ *app, _ *http.Request, parameters []string) (interface{}, error) {
	iterations, failure := parseIterations(parameters[0])
	if failure != nil {
		return nil, failure
	}
	return runIterations(iterations), nil
}

func handleWait(_ *app, _ *http.Request, parameters []string) (interface{}, error) {
	millis, failure := parseMillis(parameters[0])
	if failure != nil {
		return nil, failure
	}
	started := time.Now()
	time.Sleep(time.Duration(millis) * time.Millisecond)
	return waitedBody(millis, time.Since(started)), nil
}

func handleResmon(app *app, _ *http.Request, _ []string) (interface{}, error) {
	return snapshot(app.settings)
}

func handleOpenAPI(_ *app, _ *http.Request, _ []string) (interface{}, error) {
	return rawJSON(openAPIDocument), nil
}
