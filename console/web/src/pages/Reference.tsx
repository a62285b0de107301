// The API reference: /openapi.json (generated from the protos at build time), rendered.

import { useMemo, useState } from "preact/hooks";
import { Feedback, Loading, PageTitle, Scroll, useLoad } from "../ui";

type Schema = {
  $ref?: string;
  type?: string;
  format?: string;
  description?: string;
  enum?: string[];
  items?: Schema;
  properties?: Record<string, Schema>;
  allOf?: Schema[];
  additionalProperties?: boolean | Schema;
  contentMediaType?: string;
  contentEncoding?: string;
  required?: string[];
};

interface Parameter {
  name: string;
  in: string;
  required?: boolean;
  description?: string;
  schema: Schema;
}

interface Operation {
  operationId: string;
  tags: string[];
  summary: string;
  description: string;
  parameters?: Parameter[];
  requestBody?: { description?: string; content: Record<string, { schema: Schema }> };
  responses: Record<string, { description: string; content?: Record<string, { schema: Schema }> }>;
  security?: Record<string, string[]>[];
}

interface Document {
  info: { title: string; version: string; description: string };
  tags: { name: string; description: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

function refName(ref: string): string {
  return ref.split("/").pop() ?? ref;
}

function shortName(name: string): string {
  return name.split(".").pop() ?? name;
}

/** A one-line type: "string", "array of Box", "Service", "image/* file". */
function typeText(schema: Schema | undefined): string {
  if (!schema) return "any";
  if (schema.$ref) return shortName(refName(schema.$ref));
  if (schema.allOf?.length) return typeText(schema.allOf[0]);
  if (schema.enum) return `enum: ${schema.enum.join(" | ")}`;
  if (schema.type === "array") return `array of ${typeText(schema.items)}`;
  if (schema.contentMediaType) return `${schema.contentMediaType} file`;
  if (schema.contentEncoding) return `${schema.contentEncoding} string`;
  if (schema.format) return `${schema.type} (${schema.format})`;
  return schema.type ?? "any JSON";
}

function Fields(props: { schema: Schema; doc: Document; depth: number }) {
  let schema = props.schema;
  if (schema.$ref) schema = props.doc.components.schemas[refName(schema.$ref)] ?? {};
  if (schema.type === "array" && schema.items) {
    return <Fields schema={schema.items} doc={props.doc} depth={props.depth} />;
  }
  const properties = Object.entries(schema.properties ?? {});
  if (properties.length === 0) return schema.description ? <p>{schema.description}</p> : null;
  return (
    <ul class="fields">
      {properties.map(([name, field]) => {
        const target = field.$ref ?? field.allOf?.[0]?.$ref ?? field.items?.$ref;
        const nested = target ? props.doc.components.schemas[refName(target)] : undefined;
        return (
          <li key={name}>
            <code>{name}</code> <span class="type">{typeText(field)}</span>
            {schema.required?.includes(name) ? <span class="badge">required</span> : null}
            {field.description ? <span class="muted"> {field.description}</span> : null}
            {nested?.properties && props.depth < 3 ? (
              <Fields schema={nested} doc={props.doc} depth={props.depth + 1} />
            ) : null}
          </li>
        );
      })}
    </ul>
  );
}

function OperationView(props: { path: string; method: string; op: Operation; doc: Document }) {
  const { op, doc } = props;
  const auth = op.security?.length ? Object.keys(op.security[0])[0] : "none";
  const [status, response] = Object.entries(op.responses).find(([code]) => code !== "default") ?? [];
  return (
    <details class="operation" id={op.operationId}>
      <summary>
        <span class={`method ${props.method}`}>{props.method.toUpperCase()}</span>{" "}
        <code class="path">{props.path}</code> <span class="muted">{op.summary}</span>
      </summary>
      <p>{op.description}</p>
      <p>
        Authentication:{" "}
        {auth === "ApiKey" ? (
          <code>x-api-key</code>
        ) : auth === "Bearer" ? (
          <code>authorization: Bearer</code>
        ) : (
          "none"
        )}{" "}
        · gRPC method <code>{op.operationId}</code>
      </p>
      {op.parameters?.length ? (
        <Scroll label={`Parameters of ${op.operationId}`}>
          <table>
            <caption>Parameters</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">In</th>
                <th scope="col">Type</th>
                <th scope="col">Description</th>
              </tr>
            </thead>
            <tbody>
              {op.parameters.map((p) => (
                <tr key={`${p.in}/${p.name}`}>
                  <td>
                    <code>{p.name}</code>
                    {p.required ? " (required)" : ""}
                  </td>
                  <td>{p.in}</td>
                  <td>{typeText(p.schema)}</td>
                  <td>{p.description}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      ) : null}
      {op.requestBody ? (
        <section>
          <h4>Request body</h4>
          {op.requestBody.description ? <p>{op.requestBody.description}</p> : null}
          {Object.entries(op.requestBody.content).map(([type, media]) => (
            <div key={type}>
              <p>
                <code>{type}</code>
              </p>
              <Fields schema={media.schema} doc={doc} depth={0} />
            </div>
          ))}
        </section>
      ) : null}
      {response ? (
        <section>
          <h4>Response {status}</h4>
          {Object.entries(response.content ?? {}).map(([type, media]) => (
            <div key={type}>
              <p>
                <code>{type}</code> {typeText(media.schema)}
              </p>
              <Fields schema={media.schema} doc={doc} depth={0} />
            </div>
          ))}
          <p class="muted">
            Errors: CompreFace's <code>{'{"message", "code"}'}</code> with its HTTP status.
          </p>
        </section>
      ) : null}
    </details>
  );
}

export function Reference() {
  const doc = useLoad(async () => {
    const response = await fetch("/openapi.json");
    if (!response.ok) throw new Error(`/openapi.json: HTTP ${response.status}`);
    return (await response.json()) as Document;
  }, []);
  const [filter, setFilter] = useState("");
  const groups = useMemo(() => {
    if (!doc.data) return [];
    const needle = filter.trim().toLowerCase();
    return doc.data.tags.map((tag) => ({
      tag,
      operations: Object.entries(doc.data!.paths).flatMap(([path, methods]) =>
        Object.entries(methods)
          .filter(([, op]) => op.tags.includes(tag.name))
          .filter(([, op]) => !needle || `${path} ${op.operationId} ${op.summary}`.toLowerCase().includes(needle))
          .map(([method, op]) => ({ path, method, op })),
      ),
    }));
  }, [doc.data, filter]);
  return (
    <section>
      <PageTitle title="API reference">API reference</PageTitle>
      <p>
        Every REST path of the gateway, generated from the gRPC services' HTTP rules. The same
        document for tools: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).
      </p>
      <Feedback error={doc.error} />
      {doc.loading && !doc.data ? <Loading what="the API reference" /> : null}
      {doc.data ? (
        <>
          <label>
            Filter operations
            <input type="search" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} />
          </label>
          {groups.map(({ tag, operations }) => (
            <section key={tag.name} aria-labelledby={`tag-${tag.name}`}>
              <h2 id={`tag-${tag.name}`}>{tag.name}</h2>
              <p class="muted">{tag.description}</p>
              {operations.map(({ path, method, op }) => (
                <OperationView key={`${method} ${path}`} path={path} method={method} op={op} doc={doc.data!} />
              ))}
            </section>
          ))}
        </>
      ) : null}
    </section>
  );
}
