package org.nsw.streams;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The routing and the four engines of the comparison: small, deterministic, over the hub's own reference data
 * (refdata/ipr-register.json, refdata/cwc-states-not-party.json). Pure functions of a JSON value; no Kafka here.
 *
 * <p>Routing, per item: customs decides every submission; sps an item of HS chapters 01-14 (live animals,
 * animal and vegetable products); cwc an item declaring a CAS number; ipr an item whose description names a
 * brand of the IPR register recorded for the item's HS chapter.
 *
 * <p>Decisions: customs releases; sps releases when each of its items carries a health document (N851, C640,
 * N853, C678), else holds; cwc refuses when an item's origin or the export country is not a State Party to
 * the CWC, else releases; ipr holds (release suspended for the right holder) unless the declarant holds the
 * right. The response's outcome is the strongest of the decisions: REFUSE over HOLD over RELEASE.
 */
final class Rules {

    static final List<String> AGENCIES = List.of("customs", "sps", "cwc", "ipr");
    private static final Set<String> HEALTH_DOCUMENTS = Set.of("N851", "C640", "N853", "C678");
    private static final Map<String, Integer> RANK = Map.of("RELEASE", 0, "HOLD", 1, "REFUSE", 2);

    /** Thrown for a value that is not a submission the rules can read (it goes to the dead-letter topic). */
    static final class BadInput extends Exception {
        private static final long serialVersionUID = 1L;

        BadInput(String message) {
            super(message);
        }
    }

    private final ObjectMapper json = new ObjectMapper();
    /** Brand (upper case) to the HS chapters and holder ids it is recorded for. */
    private final Map<String, Set<String>> brandChapters = new HashMap<>();
    private final Map<String, Set<String>> brandHolders = new HashMap<>();
    private final Set<String> notParty = new HashSet<>();

    Rules(File refdata) throws IOException {
        for (JsonNode right : json.readTree(new File(refdata, "ipr-register.json")).path("rights")) {
            String brand = right.path("brand").asText("").toUpperCase(Locale.ROOT);
            if (brand.isEmpty()) {
                continue;
            }
            for (JsonNode chapter : right.path("hs_chapters")) {
                brandChapters.computeIfAbsent(brand, b -> new HashSet<>()).add(chapter.asText());
            }
            brandHolders.computeIfAbsent(brand, b -> new HashSet<>()).add(right.path("holder_id").asText(""));
        }
        for (JsonNode state : json.readTree(new File(refdata, "cwc-states-not-party.json")).path("states")) {
            notParty.add(state.path("code").asText());
        }
        if (brandChapters.isEmpty() || notParty.isEmpty()) {
            throw new IOException("no IPR brands or CWC states in " + refdata);
        }
    }

    ObjectMapper json() {
        return json;
    }

    JsonNode parse(byte[] value) throws BadInput {
        JsonNode node;
        try {
            node = value == null ? null : json.readTree(value);
        } catch (IOException e) {
            throw new BadInput("not JSON: " + e.getMessage());
        }
        if (node == null || !node.path("submission_id").isTextual() || !node.path("items").isArray()
                || node.path("items").isEmpty()) {
            throw new BadInput("a submission needs a submission_id and at least one item");
        }
        for (JsonNode item : node.path("items")) {
            if (!item.path("commodity_code").isTextual() || item.path("commodity_code").asText().length() < 2) {
                throw new BadInput("every item needs a commodity_code");
            }
        }
        return node;
    }

    /** Agency to the items routed to it, in the order of {@link #AGENCIES}; customs always. */
    Map<String, List<JsonNode>> route(JsonNode submission) {
        Map<String, List<JsonNode>> routes = new LinkedHashMap<>();
        for (String agency : AGENCIES) {
            routes.put(agency, new ArrayList<>());
        }
        for (JsonNode item : submission.path("items")) {
            String code = item.path("commodity_code").asText();
            String chapter = code.substring(0, 2);
            routes.get("customs").add(item);
            int number = chapter.chars().allMatch(Character::isDigit) ? Integer.parseInt(chapter) : 0;
            if (number >= 1 && number <= 14) {
                routes.get("sps").add(item);
            }
            if (item.path("cas_numbers").size() > 0) {
                routes.get("cwc").add(item);
            }
            if (!brands(item, chapter).isEmpty()) {
                routes.get("ipr").add(item);
            }
        }
        routes.values().removeIf(List::isEmpty);
        return routes;
    }

    private List<String> brands(JsonNode item, String chapter) {
        List<String> found = new ArrayList<>();
        for (String word : item.path("description").asText("").toUpperCase(Locale.ROOT).split("[^A-Z0-9]+")) {
            Set<String> chapters = brandChapters.get(word);
            if (chapters != null && chapters.contains(chapter)) {
                found.add(word);
            }
        }
        return found;
    }

    /** The request an agency receives: the submission's header and the items routed to it. */
    byte[] request(JsonNode submission, String agency, List<JsonNode> items) throws IOException {
        ObjectNode request = json.createObjectNode();
        request.put("submission_id", submission.path("submission_id").asText());
        request.put("agency", agency);
        request.put("declarant_id", submission.path("declarant_id").asText(""));
        request.set("export_country", submission.path("export_country"));
        ArrayNode list = request.putArray("items");
        items.forEach(list::add);
        return json.writeValueAsBytes(request);
    }

    /** The routing plan: which agencies must decide. */
    byte[] plan(JsonNode submission, Iterable<String> agencies) throws IOException {
        ObjectNode plan = json.createObjectNode();
        plan.put("submission_id", submission.path("submission_id").asText());
        ArrayNode list = plan.putArray("agencies");
        agencies.forEach(list::add);
        return json.writeValueAsBytes(plan);
    }

    /** An agency's engine: the decision on one request. */
    byte[] decide(String agency, byte[] value) throws IOException {
        JsonNode request = json.readTree(value);
        String outcome = switch (agency) {
            case "sps" -> everyItemHas(request) ? "RELEASE" : "HOLD";
            case "cwc" -> fromNonParty(request) ? "REFUSE" : "RELEASE";
            case "ipr" -> declarantHoldsRight(request) ? "RELEASE" : "HOLD";
            default -> "RELEASE";
        };
        ObjectNode decision = json.createObjectNode();
        decision.put("submission_id", request.path("submission_id").asText());
        decision.put("agency", agency);
        decision.put("outcome", outcome);
        decision.put("items", request.path("items").size());
        return json.writeValueAsBytes(decision);
    }

    private static boolean everyItemHas(JsonNode request) {
        for (JsonNode item : request.path("items")) {
            boolean has = false;
            for (JsonNode document : item.path("documents")) {
                has |= HEALTH_DOCUMENTS.contains(document.asText());
            }
            if (!has) {
                return false;
            }
        }
        return true;
    }

    private boolean fromNonParty(JsonNode request) {
        if (notParty.contains(request.path("export_country").asText(""))) {
            return true;
        }
        for (JsonNode item : request.path("items")) {
            if (notParty.contains(item.path("origin_country").asText(""))) {
                return true;
            }
        }
        return false;
    }

    private boolean declarantHoldsRight(JsonNode request) {
        String declarant = request.path("declarant_id").asText("");
        for (JsonNode item : request.path("items")) {
            String chapter = item.path("commodity_code").asText().substring(0, 2);
            for (String brand : brands(item, chapter)) {
                if (!brandHolders.getOrDefault(brand, Set.of()).contains(declarant)) {
                    return false;
                }
            }
        }
        return true;
    }

    /** The strongest outcome: REFUSE over HOLD over RELEASE. */
    static String strongest(Iterable<String> outcomes) {
        String best = "RELEASE";
        for (String outcome : outcomes) {
            if (RANK.getOrDefault(outcome, 2) > RANK.get(best)) {
                best = RANK.containsKey(outcome) ? outcome : "REFUSE";
            }
        }
        return best;
    }
}
