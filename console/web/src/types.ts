// JSON shapes of the REST API as Envoy's transcoder prints them (proto field names).
// The full reference is /openapi.json, generated from the protos.

export type GlobalRole = "GLOBAL_ROLE_OWNER" | "GLOBAL_ROLE_ADMINISTRATOR" | "GLOBAL_ROLE_USER";
export type AppRole =
  | "APPLICATION_ROLE_OWNER"
  | "APPLICATION_ROLE_ADMINISTRATOR"
  | "APPLICATION_ROLE_USER";
export type ServiceType =
  | "SERVICE_TYPE_RECOGNITION"
  | "SERVICE_TYPE_DETECTION"
  | "SERVICE_TYPE_VERIFICATION";
export type MigrationStatus =
  | "MIGRATION_STATUS_RUNNING"
  | "MIGRATION_STATUS_SUCCEEDED"
  | "MIGRATION_STATUS_FAILED";

export interface User {
  user_id: string;
  email: string;
  first_name: string;
  last_name: string;
  global_role: GlobalRole;
  create_time?: string;
}

export interface TokenResponse {
  access_token: string;
  expires_in_s: number;
  refresh_token: string;
  user?: User;
}

export interface Application {
  application_id: string;
  name: string;
  create_time?: string;
  owner?: User;
  caller_role: AppRole;
}

/** A membership, or a pending invitation of an email without an account (`pending`: only
 * `user.email` is set, `user.user_id` is empty; it becomes a membership at that sign-up). */
export interface Member {
  user: User;
  role: AppRole;
  /** When the user joined (for an invitation: when it was sent). */
  join_time?: string;
  pending?: boolean;
}

export interface Migration {
  migration_id: string;
  service_id: string;
  target_calculator: string;
  status: MigrationStatus;
  total_count: number;
  migrated_count: number;
  skipped_count: number;
  failed_count: number;
  error_message: string;
  create_time?: string;
  end_time?: string;
}

export interface Service {
  service_id: string;
  application_id: string;
  name: string;
  type: ServiceType;
  api_key: string;
  subject_count: number;
  image_count: number;
  calculator: string;
  writes_blocked: boolean;
  latest_migration?: Migration | null;
}

export interface DailyCount {
  date: string;
  request_count: number;
}

export interface Box {
  probability: number;
  x_min: number;
  y_min: number;
  x_max: number;
  y_max: number;
}

export interface Face {
  box: Box;
  landmarks?: number[][] | null;
  age?: { probability: number; low: number; high: number } | null;
  gender?: { probability: number; value: string } | null;
  pose?: { pitch: number; roll: number; yaw: number } | null;
  mask?: { probability: number; value: string } | null;
  subjects?: { subject: string; similarity: number }[];
  similarity?: number;
}

export interface FaceRef {
  image_id: string;
  subject: string;
}

export interface FacePage {
  faces: FaceRef[];
  page_number: number;
  page_size: number;
  total_pages: number;
  total_elements: number;
}

export const SERVICE_TYPES: { value: ServiceType; label: string }[] = [
  { value: "SERVICE_TYPE_RECOGNITION", label: "Recognition" },
  { value: "SERVICE_TYPE_DETECTION", label: "Detection" },
  { value: "SERVICE_TYPE_VERIFICATION", label: "Verification" },
];

export const APP_ROLES: { value: AppRole; label: string }[] = [
  { value: "APPLICATION_ROLE_OWNER", label: "Owner" },
  { value: "APPLICATION_ROLE_ADMINISTRATOR", label: "Administrator" },
  { value: "APPLICATION_ROLE_USER", label: "User" },
];

/** A readable name of an enum value: "SERVICE_TYPE_RECOGNITION" -> "Recognition". */
export function enumLabel(value: string, prefix: string): string {
  const word = value.startsWith(prefix) ? value.slice(prefix.length) : value;
  return word.charAt(0) + word.slice(1).toLowerCase().replace(/_/g, " ");
}

export function typeLabel(type: ServiceType): string {
  return enumLabel(type, "SERVICE_TYPE_");
}

export function roleLabel(role: string): string {
  return enumLabel(role, role.startsWith("GLOBAL") ? "GLOBAL_ROLE_" : "APPLICATION_ROLE_");
}

/** What the member paths (`/apps/{id}/members/{user_id}`) take for this member: the user id,
 * or for a pending invitation its email (RemoveMember cancels it; its role cannot be changed). */
export function memberRef(member: Member): string {
  return member.pending ? member.user.email : member.user.user_id;
}

/** True where the caller may change the application (owner or administrator). */
export function canManage(app: Application): boolean {
  return app.caller_role !== "APPLICATION_ROLE_USER";
}
