package main

// The JSON model (core::model): field order is the byte order on the wire.

import "github.com/jackc/pgx/v4"

type versionInfo struct {
	Version string `json:"version"`
	Variant string `json:"variant"`
}

type contactType struct {
	TypeID   int32  `json:"type_id"`
	TypeName string `json:"type_name"`
}

type contact struct {
	ContactID   int32       `json:"contact_id"`
	FirstName   string      `json:"first_name"`
	LastName    string      `json:"last_name"`
	ContactType contactType `json:"contact_type"`
	PhoneNumber []string    `json:"phone_number"`
	Email       []string    `json:"email"`
}

// page is a counted list: `/types` and `/contacts`. count ignores paging.
type page[T any] struct {
	Count   int64 `json:"count"`
	Results []T   `json:"results"`
}

type fibonacciBody struct {
	Result uint64 `json:"result"`
}

// contactRow is one row of the contact statements, with the page's total when it has one.
type contactRow struct {
	contact
	total int64
}

// detail is a phone number or an email address with its contact.
type detail struct {
	contactID int32
	value     string
}

func scanContactType(rows pgx.Rows) (contactType, error) {
	var row contactType
	err := rows.Scan(&row.TypeID, &row.TypeName)
	return row, err
}

func scanPageRow(rows pgx.Rows) (contactRow, error) {
	var row contactRow
	err := rows.Scan(&row.ContactID, &row.FirstName, &row.LastName,
		&row.ContactType.TypeID, &row.ContactType.TypeName, &row.total)
	return row, err
}

func scanContactRow(rows pgx.Rows) (contactRow, error) {
	var row contactRow
	err := rows.Scan(&row.ContactID, &row.FirstName, &row.LastName,
		&row.ContactType.TypeID, &row.ContactType.TypeName)
	return row, err
}

func scanDetail(rows pgx.Rows) (detail, error) {
	var row detail
	err := rows.Scan(&row.contactID, &row.value)
	return row, err
}

// assembleContacts joins contact rows with their phones and emails. All three are ordered by
// contact_id (the details by their own key within a contact), as the SQL returns them: the join
// is one merge pass. Phones and emails are never null in the JSON: a contact without any has [].
func assembleContacts(rows []contactRow, phones, emails []detail) []contact {
	contacts := make([]contact, 0, len(rows))
	phoneAt, emailAt := 0, 0
	for _, row := range rows {
		current := row.contact
		current.PhoneNumber, phoneAt = detailsOf(current.ContactID, phones, phoneAt)
		current.Email, emailAt = detailsOf(current.ContactID, emails, emailAt)
		contacts = append(contacts, current)
	}
	return contacts
}

func detailsOf(contactID int32, details []detail, at int) ([]string, int) {
	// Details of contacts that are not in the page cannot occur, but skipping them keeps the
	// merge correct whatever the input.
	for at < len(details) && details[at].contactID < contactID {
		at++
	}
	values := []string{}
	for at < len(details) && details[at].contactID == contactID {
		values = append(values, details[at].value)
		at++
	}
	return values, at
}
