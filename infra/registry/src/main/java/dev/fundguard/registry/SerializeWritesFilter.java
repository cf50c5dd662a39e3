package dev.fundguard.registry;

import java.io.IOException;
import java.util.Set;
import java.util.concurrent.locks.ReentrantLock;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletResponse;
import javax.servlet.annotation.WebFilter;
import javax.servlet.http.HttpServletRequest;

/**
 * Runs the registry's API requests that may write one at a time.
 *
 * Apicurio Registry 2.4's in-memory (H2) storage hands out content and global ids from a
 * "sequences" table with an UPDATE-then-SELECT that is not safe under concurrent
 * transactions: parallel registrations fail with HTTP 500 (H2 lock timeouts, duplicate
 * content ids). Shrinking the connection pool to one connection is not an option either:
 * some requests use a second connection while holding the first and then time out.
 *
 * Reads (GET, HEAD, OPTIONS) are not serialised. Each write takes milliseconds, so a local
 * development registry loses nothing that matters.
 */
@WebFilter(filterName = "FundguardSerializeWrites", urlPatterns = "/apis/*")
public class SerializeWritesFilter implements Filter {

    private static final Set<String> READ_METHODS = Set.of("GET", "HEAD", "OPTIONS");
    private static final ReentrantLock WRITES = new ReentrantLock(true);

    @Override
    public void doFilter(ServletRequest request, ServletResponse response, FilterChain chain)
            throws IOException, ServletException {
        String method = request instanceof HttpServletRequest
                ? ((HttpServletRequest) request).getMethod()
                : "GET";
        if (READ_METHODS.contains(method)) {
            chain.doFilter(request, response);
            return;
        }
        WRITES.lock();
        try {
            chain.doFilter(request, response);
        } finally {
            WRITES.unlock();
        }
    }
}
