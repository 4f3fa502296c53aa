package bakeoff.springjdbc;

import java.io.IOException;
import java.lang.reflect.Type;
import java.util.Collections;
import org.springframework.http.HttpOutputMessage;
import org.springframework.http.MediaType;
import org.springframework.http.converter.HttpMessageNotWritableException;
import org.springframework.http.converter.json.MappingJackson2HttpMessageConverter;

/**
 * Spring's Jackson converter, writing {@code application/json} (without Spring 4.3's
 * {@code ;charset=UTF-8}) with a {@code Content-Length}: the body is serialized whole first, as
 * every bakeoff server sends it. Spring's own streams into the response and flushes, which makes
 * Jetty send it chunked, and an answer to HEAD without a length when its status is an error's.
 */
final class JsonConverter extends MappingJackson2HttpMessageConverter {
    JsonConverter() {
        super(Main.JSON);
        setSupportedMediaTypes(Collections.singletonList(MediaType.APPLICATION_JSON));
        setDefaultCharset(null);
    }

    @Override
    protected void writeInternal(Object body, Type type, HttpOutputMessage output)
            throws IOException, HttpMessageNotWritableException {
        byte[] bytes = getObjectMapper().writeValueAsBytes(body);
        output.getHeaders().setContentLength(bytes.length);
        output.getBody().write(bytes);
    }
}
