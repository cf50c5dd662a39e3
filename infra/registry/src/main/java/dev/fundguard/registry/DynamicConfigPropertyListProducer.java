package dev.fundguard.registry;

import io.apicurio.common.apps.config.DynamicConfigPropertyList;
import java.util.List;
import javax.enterprise.inject.Produces;
import javax.inject.Singleton;

/**
 * Stands in for the build step of Apicurio's "config-index" Quarkus extension, whose
 * deployment module (io.apicurio:apicurio-common-app-components-config-index-deployment)
 * is not published on Maven Central. That build step only lists the properties that can
 * be changed at run time through the admin API (/apis/registry/v2/admin/config/properties).
 *
 * Here the list is empty: every property keeps its static value (application.properties,
 * -D system properties, environment), which is all this local registry needs; the admin
 * API simply reports no runtime-editable property.
 */
@Singleton
public class DynamicConfigPropertyListProducer {

    @Produces
    @Singleton
    DynamicConfigPropertyList dynamicConfigPropertyList() {
        return new DynamicConfigPropertyList(List.of());
    }
}
