package bakeoff.springjdbc;

import java.io.IOException;
import java.util.Locale;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.http.HttpStatus;
import org.eclipse.jetty.server.Request;
import org.eclipse.jetty.server.handler.ErrorHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.dao.DataAccessException;
import org.springframework.http.HttpHeaders;
import org.springframework.http.MediaType;
import org.springframework.http.ResponseEntity;
import org.springframework.web.HttpRequestMethodNotSupportedException;
import org.springframework.web.bind.annotation.ControllerAdvice;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.servlet.NoHandlerFoundException;

/**
 * Every failure as the contract's JSON ({@code core::error}), in place of Spring's and Jetty's
 * defaults (HTML pages, empty 405s, an OPTIONS that answers 200).
 */
@ControllerAdvice
public class ContractErrors {
    private static final Logger LOG = LoggerFactory.getLogger(ContractErrors.class);

    /** The answer to an error: its body, {@code Allow} on a 405, {@code Retry-After} on a 503. */
    static ResponseEntity<Model.ErrorBody> render(ApiException error) {
        HttpHeaders headers = new HttpHeaders();
        headers.setContentType(MediaType.APPLICATION_JSON);
        if (error.status == 405) {
            headers.set(HttpHeaders.ALLOW, "GET, HEAD");
        } else if (error.status == 503) {
            headers.set(HttpHeaders.RETRY_AFTER, "1");
        }
        return ResponseEntity.status(error.status).headers(headers).body(new Model.ErrorBody(error));
    }

    @ExceptionHandler(ApiException.class)
    public ResponseEntity<Model.ErrorBody> contractError(ApiException error) {
        return render(error);
    }

    @ExceptionHandler(NoHandlerFoundException.class)
    public ResponseEntity<Model.ErrorBody> noSuchPath() {
        return render(ApiException.routeNotFound());
    }

    @ExceptionHandler(HttpRequestMethodNotSupportedException.class)
    public ResponseEntity<Model.ErrorBody> methodNotAllowed() {
        return render(ApiException.methodNotAllowed());
    }

    @ExceptionHandler(DataAccessException.class)
    public ResponseEntity<Model.ErrorBody> database(DataAccessException error) {
        if (Database.isUnavailable(error)) {
            LOG.warn("database unavailable: {}", error.getMessage());
            return render(ApiException.databaseUnavailable());
        }
        LOG.error("database error", error);
        return render(ApiException.internal());
    }

    @ExceptionHandler(Exception.class)
    public ResponseEntity<Model.ErrorBody> bug(HttpServletRequest request, Exception error) {
        LOG.error("unhandled error in {} {}", request.getMethod(), request.getRequestURI(), error);
        return render(ApiException.internal());
    }

    /**
     * Refuses OPTIONS on a known path: Spring 4.3 answers it itself (200 with {@code Allow}); the
     * contract answers 405 for every method but GET and HEAD.
     */
    static final class OnlyGetAndHead extends org.springframework.web.servlet.handler.HandlerInterceptorAdapter {
        @Override
        public boolean preHandle(HttpServletRequest request, HttpServletResponse response, Object handler)
                throws HttpRequestMethodNotSupportedException {
            String method = request.getMethod();
            if (!method.equals("GET") && !method.equals("HEAD")) {
                throw new HttpRequestMethodNotSupportedException(method);
            }
            return true;
        }
    }

    /**
     * Jetty's own refusals (a malformed request, an error outside Spring) in the contract's form:
     * their status, their reason as the message.
     */
    static final class JettyErrors extends ErrorHandler {
        @Override
        protected void generateAcceptableResponse(
                Request baseRequest, HttpServletRequest request, HttpServletResponse response,
                int code, String message) throws IOException {
            ApiException error = code == 404
                    ? ApiException.routeNotFound()
                    : ApiException.ofStatus(code, HttpStatus.getMessage(code).toLowerCase(Locale.ROOT));
            byte[] body = Main.JSON.writeValueAsBytes(new Model.ErrorBody(error));
            baseRequest.setHandled(true);
            response.setContentType("application/json");
            response.setContentLength(body.length);
            response.getOutputStream().write(body);
        }
    }
}
