package bakeoff.springjdbc;

import bakeoff.springjdbc.Model.Contact;
import bakeoff.springjdbc.Model.ContactType;
import bakeoff.springjdbc.Model.Page;
import java.io.IOException;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import javax.servlet.http.HttpServletRequest;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.RestController;

/**
 * The contract's routes as a Spring MVC controller. Spring answers HEAD for every GET mapping and
 * one trailing slash (its trailing-slash match); path variables are plain strings, parsed by
 * {@link Params}. Thread-per-request: each request runs on one of Jetty's pool threads from start
 * to end, so {@code /test/sync-cpubound} and {@code /test/offload-cpubound} both compute on it, and
 * both waits sleep on it (there is no event loop to block or to hand work from).
 */
@RestController
public class ContractController {
    private final Database database;
    private final Settings settings;
    private final byte[] openApiDocument;

    ContractController(Database database, Settings settings, byte[] openApiDocument) {
        this.database = database;
        this.settings = settings;
        this.openApiDocument = openApiDocument;
    }

    @GetMapping("/version")
    public Model.VersionInfo version() {
        return new Model.VersionInfo(Main.VERSION, Main.VARIANT);
    }

    @GetMapping("/types")
    public Page<ContactType> types() {
        List<ContactType> types = database.withConnection(statements ->
                statements.query(Sql.LIST_TYPES, ContractController::contactType));
        return new Page<>(types.size(), types);
    }

    @GetMapping("/contacts")
    public Page<Contact> contacts(HttpServletRequest request) {
        // Parsed before a connection is taken: a 400 costs no connection.
        Params.PageRequest page = Params.PageRequest.fromQuery(request.getQueryString());
        return database.withConnection(statements -> {
            List<ContactRow> rows = page.starts == null
                    ? statements.query(Sql.CONTACTS_PAGE, ContactRow::withTotal, page.limit, page.offset)
                    : statements.query(Sql.CONTACTS_PAGE_STARTS, ContactRow::withTotal,
                            page.likePattern(), page.likePattern(), page.limit, page.offset);
            if (rows.isEmpty()) {
                // The count rides on the page's rows; an empty page needs it alone.
                long count = page.starts == null
                        ? statements.count(Sql.COUNT_CONTACTS)
                        : statements.count(Sql.COUNT_CONTACTS_STARTS, page.likePattern());
                return new Page<Contact>(count, Collections.emptyList());
            }
            return new Page<>(rows.get(0).total, withDetails(statements, rows));
        });
    }

    @GetMapping("/contacts/{contact_id}")
    public Contact contact(@PathVariable("contact_id") String contactId) {
        int id = Params.contactId(contactId);
        return database.withConnection(statements -> {
            List<ContactRow> rows = statements.query(Sql.CONTACT_BY_ID, ContactRow::withoutTotal, id);
            if (rows.isEmpty()) {
                throw ApiException.contactNotFound();
            }
            return withDetails(statements, rows).get(0);
        });
    }

    @GetMapping("/fibonacci/{n}")
    public Model.FibonacciBody fibonacci(@PathVariable("n") String n) {
        return new Model.FibonacciBody(Workload.fibonacci(Params.fibonacciN(n)));
    }

    @GetMapping("/test/calibrate")
    public Model.TimedBody calibrate() {
        return Workload.calibrate();
    }

    @GetMapping({"/test/sync-cpubound/{iterations}", "/test/offload-cpubound/{iterations}"})
    public Model.CpuBody cpuBound(@PathVariable("iterations") String iterations) {
        return Workload.runIterations(Params.iterations(iterations));
    }

    @GetMapping({"/test/async-iobound/{millis}", "/test/blocking-iobound/{millis}"})
    public Model.TimedBody wait(@PathVariable("millis") String millis) throws InterruptedException {
        return Workload.sleep(Params.millis(millis));
    }

    @GetMapping("/test/resmon")
    public Model.ResourceSnapshot resmon() throws IOException {
        return Resmon.snapshot(settings);
    }

    @GetMapping("/openapi.json")
    public ResponseEntity<byte[]> openApi() {
        return ResponseEntity.ok().contentType(MediaType.APPLICATION_JSON).body(openApiDocument);
    }

    private static ContactType contactType(ResultSet row, int index) throws SQLException {
        return new ContactType(row.getInt(1), row.getString(2));
    }

    /** One row of the contact statements, with the page's total when it has one. */
    private static final class ContactRow {
        final int contactId;
        final String firstName;
        final String lastName;
        final ContactType type;
        final long total;

        private ContactRow(ResultSet row, boolean hasTotal) throws SQLException {
            contactId = row.getInt(1);
            firstName = row.getString(2);
            lastName = row.getString(3);
            type = new ContactType(row.getInt(4), row.getString(5));
            total = hasTotal ? row.getLong(6) : 0;
        }

        static ContactRow withTotal(ResultSet row, int index) throws SQLException {
            return new ContactRow(row, true);
        }

        static ContactRow withoutTotal(ResultSet row, int index) throws SQLException {
            return new ContactRow(row, false);
        }
    }

    /** A phone number or an email address with its contact. */
    private static final class Detail {
        final int contactId;
        final String value;

        Detail(ResultSet row, int index) throws SQLException {
            contactId = row.getInt(1);
            value = row.getString(2);
        }
    }

    /** The phones and emails statements for the rows' contacts, joined in one merge pass (all
     * three are ordered by contact_id, the details by their own key within a contact). */
    private static List<Contact> withDetails(Database.Statements statements, List<ContactRow> rows) {
        Integer[] ids = new Integer[rows.size()];
        for (int index = 0; index < ids.length; index++) {
            ids[index] = rows.get(index).contactId;
        }
        List<Detail> phones = statements.query(Sql.PHONES_OF_CONTACTS, Detail::new, (Object) ids);
        List<Detail> emails = statements.query(Sql.EMAILS_OF_CONTACTS, Detail::new, (Object) ids);
        DetailCursor phoneCursor = new DetailCursor(phones);
        DetailCursor emailCursor = new DetailCursor(emails);
        List<Contact> contacts = new ArrayList<>(rows.size());
        for (ContactRow row : rows) {
            contacts.add(new Contact(row.contactId, row.firstName, row.lastName, row.type,
                    phoneCursor.take(row.contactId), emailCursor.take(row.contactId)));
        }
        return contacts;
    }

    /** Walks details ordered by contact, handing each contact its own. */
    private static final class DetailCursor {
        private final List<Detail> details;
        private int at;

        DetailCursor(List<Detail> details) {
            this.details = details;
        }

        List<String> take(int contactId) {
            // Details of contacts that are not in the page cannot occur, but skipping them keeps
            // the merge correct whatever the input.
            while (at < details.size() && details.get(at).contactId < contactId) {
                at++;
            }
            List<String> values = new ArrayList<>();
            while (at < details.size() && details.get(at).contactId == contactId) {
                values.add(details.get(at).value);
                at++;
            }
            return values;
        }
    }
}
