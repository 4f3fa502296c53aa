package bakeoff.springjdbc;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.springframework.context.annotation.Bean;
import org.springframework.http.MediaType;
import org.springframework.http.converter.ByteArrayHttpMessageConverter;
import org.springframework.http.converter.HttpMessageConverter;
import org.springframework.web.accept.ContentNegotiationManager;
import org.springframework.web.accept.FixedContentNegotiationStrategy;
import org.springframework.web.servlet.mvc.method.annotation.ExceptionHandlerExceptionResolver;
import org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerAdapter;
import org.springframework.web.servlet.mvc.method.annotation.RequestMappingHandlerMapping;

/**
 * Spring MVC's configuration, every bean registered here (no classpath scanning): the controller,
 * the error advice, and the three beans of annotated controllers (the handler mapping, the
 * handler adapter, the exception resolver) with the few settings that make Spring answer the
 * contract's way. The DispatcherServlet finds them in the context.
 *
 * <p>Not {@code @EnableWebMvc}, and not a {@code @Configuration} class: both need the CGLIB
 * subclass Spring makes of a {@code @Configuration} class, which Debian's Spring 4.3.30 cannot
 * make (its repackaged CGLIB asks for an ASM API, ASM7, that its repackaged ASM refuses). The
 * {@code @Bean} methods of this plain class run in Spring's "lite" mode, one call per bean.
 */
public class WebConfig {
    @Bean
    public ContractController contractController(Database database, Settings settings) {
        return new ContractController(database, settings, Main.OPENAPI_DOCUMENT);
    }

    @Bean
    public ContractErrors contractErrors() {
        return new ContractErrors();
    }

    /**
     * {@code /contacts/1.5} is the id "1.5" (a 400), not "1" with a ".5" suffix; one trailing slash
     * matches; OPTIONS on a known path is refused like any method but GET and HEAD.
     */
    @Bean
    public RequestMappingHandlerMapping requestMappingHandlerMapping() {
        RequestMappingHandlerMapping mapping = new RequestMappingHandlerMapping();
        mapping.setUseSuffixPatternMatch(false);
        mapping.setUseRegisteredSuffixPatternMatch(false);
        mapping.setUseTrailingSlashMatch(true);
        mapping.setContentNegotiationManager(alwaysJson());
        mapping.setInterceptors(new ContractErrors.OnlyGetAndHead());
        mapping.setOrder(0);
        return mapping;
    }

    @Bean
    public RequestMappingHandlerAdapter requestMappingHandlerAdapter() {
        RequestMappingHandlerAdapter adapter = new RequestMappingHandlerAdapter();
        adapter.setMessageConverters(messageConverters());
        adapter.setContentNegotiationManager(alwaysJson());
        return adapter;
    }

    @Bean
    public ExceptionHandlerExceptionResolver exceptionHandlerExceptionResolver() {
        ExceptionHandlerExceptionResolver resolver = new ExceptionHandlerExceptionResolver();
        resolver.setMessageConverters(messageConverters());
        resolver.setContentNegotiationManager(alwaysJson());
        return resolver;
    }

    /** JSON whatever the request's Accept header says, as every bakeoff server answers. */
    private static ContentNegotiationManager alwaysJson() {
        return new ContentNegotiationManager(new FixedContentNegotiationStrategy(MediaType.APPLICATION_JSON));
    }

    /** The OpenAPI document's bytes as they are, Jackson for every other body. */
    private static List<HttpMessageConverter<?>> messageConverters() {
        ByteArrayHttpMessageConverter bytes = new ByteArrayHttpMessageConverter();
        bytes.setSupportedMediaTypes(Collections.singletonList(MediaType.APPLICATION_JSON));
        return Arrays.asList(bytes, new JsonConverter());
    }
}
