package org.nsw.example;

import java.io.ByteArrayInputStream;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.apache.avro.AvroRuntimeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.message.MissingSchemaException;
import org.apache.avro.message.SchemaStore;

/**
 * The hub's published {@code .avsc} files, parsed with Apache Avro's own parser, and Avro's own single-object
 * codec over them: nothing of the hub's code, only the files.
 *
 * <p>The files name each other's types by full name ({@code nsw.v1.Item} inside {@code AgencyRequest}), so a
 * file can only be parsed once the types it names are known: the files are tried in turn until all parse.
 * Every parsed schema goes into a {@link SchemaStore.Cache}, where the {@link BinaryMessageDecoder} finds the
 * writer schema of a record by the CRC-64-AVRO fingerprint in its single-object header.
 */
final class AvscSchemas {

    /** A record whose writer schema is not among the published files (or that is not single-object encoded). */
    static final class UnknownSchemaException extends Exception {
        private static final long serialVersionUID = 1L;

        UnknownSchemaException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final Map<String, Schema> byName = new TreeMap<>();
    private final SchemaStore.Cache store = new SchemaStore.Cache();
    private final Map<String, BinaryMessageDecoder<GenericRecord>> decoders = new LinkedHashMap<>();
    private final Map<String, BinaryMessageEncoder<GenericRecord>> encoders = new LinkedHashMap<>();

    AvscSchemas(File directory) throws IOException {
        File[] files = directory.listFiles((dir, name) -> name.endsWith(".avsc"));
        if (files == null || files.length == 0) {
            throw new IOException("no .avsc files in " + directory);
        }
        Arrays.sort(files);
        Map<String, Schema> known = new LinkedHashMap<>();
        List<File> pending = new ArrayList<>(Arrays.asList(files));
        while (!pending.isEmpty()) {
            List<File> left = new ArrayList<>();
            AvroRuntimeException last = null;
            for (File file : pending) {
                // A fresh parser for each try, so a failed parse leaves no half-defined types behind.
                Schema.Parser parser = new Schema.Parser().addTypes(known.values());
                try {
                    Schema schema = parser.parse(file);
                    known.putAll(parser.getTypes());
                    byName.put(schema.getFullName(), schema);
                } catch (AvroRuntimeException e) { // names a type not parsed yet (or is not a schema)
                    left.add(file);
                    last = e;
                }
            }
            if (left.size() == pending.size()) {
                throw new IOException("cannot parse " + left + ": " + (last == null ? "" : last.getMessage()), last);
            }
            pending = left;
        }
        for (Schema schema : byName.values()) {
            store.addSchema(schema);
        }
    }

    /** The schema of a published file by full name, e.g. {@code nsw.v1.AgencyRequest}. */
    Schema get(String fullName) {
        Schema schema = byName.get(fullName);
        if (schema == null) {
            throw new IllegalArgumentException("no published schema " + fullName);
        }
        return schema;
    }

    /** Every top-level schema read from the files, by full name. */
    Map<String, Schema> all() {
        return byName;
    }

    /** Hex of the 8 little-endian bytes of the CRC-64-AVRO fingerprint, as they stand in a record's header. */
    static String fingerprintHex(Schema schema) {
        long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
        byte[] bytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(fingerprint).array();
        return HexFormat.of().formatHex(bytes);
    }

    /** Decodes a single-object encoded record as {@code readerName}, the writer schema found by fingerprint. */
    GenericRecord decode(String readerName, byte[] value) throws UnknownSchemaException {
        BinaryMessageDecoder<GenericRecord> decoder = decoders.computeIfAbsent(
                readerName, name -> new BinaryMessageDecoder<>(GenericData.get(), get(name), store));
        try {
            return decoder.decode(new ByteArrayInputStream(value), null);
        } catch (MissingSchemaException e) {
            String header = value.length >= 10 ? HexFormat.of().formatHex(value, 2, 10) : "(none)";
            throw new UnknownSchemaException("no published schema has fingerprint " + header
                    + " (the record's writer schema is not among the .avsc files)", e);
        } catch (IOException | RuntimeException e) {
            throw new UnknownSchemaException("cannot decode a " + readerName + ": " + e, e);
        }
    }

    /** Single-object encoding of {@code record} with its schema's fingerprint. */
    byte[] encode(GenericRecord record) throws IOException {
        BinaryMessageEncoder<GenericRecord> encoder = encoders.computeIfAbsent(
                record.getSchema().getFullName(), name -> new BinaryMessageEncoder<>(GenericData.get(), get(name)));
        ByteBuffer buffer = encoder.encode(record);
        byte[] bytes = new byte[buffer.remaining()];
        buffer.get(bytes);
        return bytes;
    }
}
