// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @notice The person part of EnterpriseRegistry that WorkTicket relies on.
interface IPersonRegistry {
    function hasPersonRole(address person, uint32 role) external view returns (bool);
    function isPermittedSender(address account) external view returns (bool);
    function getPerson(address person)
        external
        view
        returns (address enterprise, uint32 roles, string memory qualification, bool active);
    function enterpriseByPrefix(string calldata prefix) external view returns (address);
}

/// @title WorkTicket
/// @notice Electronic work tickets for maintenance jobs on equipment (GB 26860 roles). Every step is
/// a transaction by, or an EIP-712 signature of, the named person registered in EnterpriseRegistry:
///
///   issue (ticket issuer 签发人) -> permit (permitting officer 许可人) -> brief (person in charge
///   工作负责人) -> acknowledge (each crew member 工作班成员, once each, any order) -> endWork (person
///   in charge, after every acknowledgement) -> terminate (permitting officer).
///
/// Side steps: cancel (issuer, before the permit), extend (permitting officer, once, while the
/// work is permitted and not ended, before the planned end, by at most MAX_EXTENSION) and abort
/// (the named permitting officer or any active permitting officer of the issuing enterprise, with a
/// reason, from any open status: the exit for a ticket whose named person is gone). Issuer,
/// permitting officer and person in charge are three different people; crew members are distinct
/// and none of them.
///
/// Time: a ticket is issued for a window that has not ended, starts no earlier than GRACE before
/// now and lasts at most MAX_WINDOW. Permit, brief and acknowledge happen inside
/// [plannedStart - GRACE, plannedEnd]; endWork inside [plannedStart - GRACE, plannedEnd + GRACE]
/// (GRACE = 15 minutes). Work that overruns without an extension can only be aborted.
///
/// Equipment: the identifier is `<prefix>/<suffix>` and the prefix must belong (EnterpriseRegistry
/// `enterpriseByPrefix`) to the issuer's enterprise. Relayed steps need a relayer that is a
/// permitted sender (active member).
///
/// Relaying (EIP-712): a person may sign a step on a device and anyone permitted to transact may
/// submit it with `issueBySig` / `stepBySig`; the contract recovers the signer with ecrecover and
/// checks it is the named person. Domain: name "TraceLedger WorkTicket", version "1", chainId,
/// verifyingContract = this contract. Types:
///   TicketIssue(string equipment,bytes32 digest,address permitter,address leader,address[] crew,
///               uint64 plannedStart,uint64 plannedEnd,uint256 nonce,uint256 deadline)
///   TicketStep(uint256 ticketId,uint8 action,uint64 plannedEnd,uint256 nonce,uint256 deadline)
/// `nonce` is `nonces(signer)` (incremented on use), `deadline` a unix time in seconds.
contract WorkTicket {
    // ----------------------------------------------------------- person roles
    uint32 public constant TICKET_ISSUER = 1;
    uint32 public constant PERMITTING_OFFICER = 2;
    uint32 public constant PERSON_IN_CHARGE = 4;
    uint32 public constant CREW_MEMBER = 8;
    uint256 public constant MAX_CREW = 32;
    /// @notice Tolerance around the planned window for clock skew and walking to the site (seconds).
    uint64 public constant GRACE = 15 minutes;
    /// @notice Longest planned window of a ticket (seconds).
    uint64 public constant MAX_WINDOW = 7 days;
    /// @notice Longest extension of the planned end (seconds).
    uint64 public constant MAX_EXTENSION = 1 days;

    // ------------------------------------------------------------------ types
    enum Status {
        None,
        Issued,
        Permitted,
        Briefed,
        WorkEnded,
        Terminated,
        Cancelled,
        Aborted
    }

    enum Action {
        Issue,
        Permit,
        Brief,
        Acknowledge,
        EndWork,
        Terminate,
        Cancel,
        Extend,
        Abort
    }

    struct IssueRequest {
        string equipment;
        bytes32 digest;
        address permitter;
        address leader;
        address[] crew;
        uint64 plannedStart;
        uint64 plannedEnd;
    }

    struct Ticket {
        string equipment;
        bytes32 digest;
        address issuer;
        address permitter;
        address leader;
        address[] crew;
        uint64 plannedStart;
        uint64 plannedEnd;
        Status status;
        uint32 acknowledged;
        bool extended;
    }

    struct Step {
        Action action;
        address actor;
        address submitter;
        uint64 timestamp;
        uint64 blockNumber;
        uint64 plannedEnd;
    }

    // ----------------------------------------------------------------- EIP-712
    bytes32 public constant ISSUE_TYPEHASH = keccak256(
        "TicketIssue(string equipment,bytes32 digest,address permitter,address leader,address[] crew,"
        "uint64 plannedStart,uint64 plannedEnd,uint256 nonce,uint256 deadline)"
    );
    bytes32 public constant STEP_TYPEHASH =
        keccak256("TicketStep(uint256 ticketId,uint8 action,uint64 plannedEnd,uint256 nonce,uint256 deadline)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// secp256k1n / 2 (EIP-2 low-s)
    uint256 private constant HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    // ------------------------------------------------------------------ state
    IPersonRegistry private immutable _registry;
    uint256 public ticketCount;
    mapping(uint256 => Ticket) private _tickets;
    mapping(uint256 => Step[]) private _steps;
    mapping(uint256 => mapping(address => bool)) private _acked;
    mapping(bytes32 => uint256[]) private _byEquipment;
    /// @notice EIP-712 nonce of each signer.
    mapping(address => uint256) public nonces;
    /// @notice Reason of the abort of a ticket ("" when not aborted).
    mapping(uint256 => string) public abortReason;

    // ----------------------------------------------------------------- events
    event TicketIssued(
        uint256 indexed ticketId, bytes32 indexed equipmentHash, string equipment, bytes32 digest, address issuer
    );
    event StepRecorded(
        uint256 indexed ticketId, Action action, address indexed actor, address submitter, uint64 timestamp
    );
    /// @notice The planned window at issue and after an extension (unix seconds).
    event TicketWindow(uint256 indexed ticketId, uint64 plannedStart, uint64 plannedEnd, bool extended);
    event TicketAborted(uint256 indexed ticketId, address indexed actor, string reason);

    // ----------------------------------------------------------------- errors
    error ZeroAddress();
    error UnknownTicket(uint256 ticketId);
    error EmptyEquipment();
    error ZeroDigest();
    error InvalidWindow(uint64 plannedStart, uint64 plannedEnd);
    error InvalidCrewSize(uint256 size);
    error MissingRole(address person, uint32 role);
    error SamePerson(address person);
    error WrongStatus(uint256 ticketId, Status status, Action action);
    error NotNamedPerson(uint256 ticketId, Action action, address expected, address actual);
    error NotCrewMember(uint256 ticketId, address actor);
    error AlreadyAcknowledged(uint256 ticketId, address actor);
    error CrewNotAcknowledged(uint256 ticketId, uint256 acknowledged, uint256 crew);
    error ExtensionAlreadyUsed(uint256 ticketId);
    error InvalidExtension(uint256 ticketId, uint64 plannedEnd, uint64 requested);
    error InvalidAction(uint8 action);
    error SignatureExpired(uint256 deadline);
    error InvalidSignature();
    error WrongSigner(address expected, address recovered);
    error OutsideWindow(uint256 ticketId, Action action, uint64 opens, uint64 closes, uint256 nowSeconds);
    error WindowInPast(uint64 plannedStart, uint64 plannedEnd, uint256 nowSeconds);
    error WindowTooLong(uint64 plannedStart, uint64 plannedEnd);
    error EquipmentNotOwned(string equipment, address owner, address issuerEnterprise);
    error NotPermittedRelayer(address relayer);
    error EmptyReason();

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IPersonRegistry(registry);
    }

    /// @notice The EnterpriseRegistry holding persons and their roles.
    function enterpriseRegistry() external view returns (address) {
        return address(_registry);
    }

    // ------------------------------------------------------------ transitions
    /// @notice Issue a ticket as the ticket issuer (msg.sender); returns the new ticket id (1, 2, …).
    function issue(IssueRequest calldata r) external returns (uint256) {
        return _issue(r, msg.sender);
    }

    /// @notice Issue a ticket signed (EIP-712 TicketIssue) by `issuer` on its device.
    function issueBySig(IssueRequest calldata r, address issuer, uint256 deadline, bytes calldata signature)
        external
        returns (uint256)
    {
        bytes32 structHash = keccak256(
            abi.encode(
                ISSUE_TYPEHASH,
                keccak256(bytes(r.equipment)),
                r.digest,
                r.permitter,
                r.leader,
                keccak256(abi.encodePacked(r.crew)),
                r.plannedStart,
                r.plannedEnd,
                nonces[issuer],
                deadline
            )
        );
        _relayer();
        _useSignature(issuer, structHash, deadline, signature);
        return _issue(r, issuer);
    }

    function permit(uint256 ticketId) external {
        _step(ticketId, Action.Permit, 0, msg.sender);
    }

    function brief(uint256 ticketId) external {
        _step(ticketId, Action.Brief, 0, msg.sender);
    }

    function acknowledge(uint256 ticketId) external {
        _step(ticketId, Action.Acknowledge, 0, msg.sender);
    }

    function endWork(uint256 ticketId) external {
        _step(ticketId, Action.EndWork, 0, msg.sender);
    }

    function terminate(uint256 ticketId) external {
        _step(ticketId, Action.Terminate, 0, msg.sender);
    }

    function cancel(uint256 ticketId) external {
        _step(ticketId, Action.Cancel, 0, msg.sender);
    }

    /// @notice Extend the planned end (unix seconds) once, by the permitting officer.
    function extend(uint256 ticketId, uint64 newPlannedEnd) external {
        _step(ticketId, Action.Extend, newPlannedEnd, msg.sender);
    }

    /// @notice Abort an open ticket with a `reason` (the named permitting officer, or any active
    /// permitting officer of the issuer's enterprise when the named one is gone).
    function abort(uint256 ticketId, string calldata reason) external {
        Ticket storage t = _tickets[ticketId];
        Status s = t.status;
        if (s == Status.None) revert UnknownTicket(ticketId);
        if (s == Status.Terminated || s == Status.Cancelled || s == Status.Aborted) {
            revert WrongStatus(ticketId, s, Action.Abort);
        }
        if (bytes(reason).length == 0) revert EmptyReason();
        _requireRole(msg.sender, PERMITTING_OFFICER);
        if (msg.sender != t.permitter && _enterpriseOf(msg.sender) != _enterpriseOf(t.issuer)) {
            revert NotNamedPerson(ticketId, Action.Abort, t.permitter, msg.sender);
        }
        t.status = Status.Aborted;
        abortReason[ticketId] = reason;
        emit TicketAborted(ticketId, msg.sender, reason);
        _record(ticketId, Action.Abort, msg.sender, 0);
    }

    /// @notice Record a step signed (EIP-712 TicketStep) by `actor`; `plannedEnd` only for Extend (else 0).
    function stepBySig(
        uint256 ticketId,
        Action action,
        uint64 plannedEnd,
        address actor,
        uint256 deadline,
        bytes calldata signature
    ) external {
        if (action == Action.Issue || action == Action.Abort) revert InvalidAction(uint8(action));
        _relayer();
        bytes32 structHash =
            keccak256(abi.encode(STEP_TYPEHASH, ticketId, uint8(action), plannedEnd, nonces[actor], deadline));
        _useSignature(actor, structHash, deadline, signature);
        _step(ticketId, action, plannedEnd, actor);
    }

    // ------------------------------------------------------------------ views
    function getTicket(uint256 ticketId) external view returns (Ticket memory) {
        if (_tickets[ticketId].status == Status.None) revert UnknownTicket(ticketId);
        return _tickets[ticketId];
    }

    /// @notice Every recorded step of a ticket in order (the Issue step first).
    function getSteps(uint256 ticketId) external view returns (Step[] memory) {
        if (_tickets[ticketId].status == Status.None) revert UnknownTicket(ticketId);
        return _steps[ticketId];
    }

    function isAcknowledged(uint256 ticketId, address person) external view returns (bool) {
        return _acked[ticketId][person];
    }

    /// @notice Ids of every ticket ever issued for `equipment`, oldest first.
    function ticketsForEquipment(string calldata equipment) external view returns (uint256[] memory) {
        return _byEquipment[keccak256(bytes(equipment))];
    }

    /// @notice EIP-712 domain separator of this contract on this chain.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(
            abi.encode(
                DOMAIN_TYPEHASH, keccak256("TraceLedger WorkTicket"), keccak256("1"), block.chainid, address(this)
            )
        );
    }

    // --------------------------------------------------------------- internal
    function _requireRole(address person, uint32 role) private view {
        if (!_registry.hasPersonRole(person, role)) revert MissingRole(person, role);
    }

    function _relayer() private view {
        if (!_registry.isPermittedSender(msg.sender)) revert NotPermittedRelayer(msg.sender);
    }

    function _enterpriseOf(address person) private view returns (address enterprise) {
        // only the enterprise is needed (roles and activity are checked through hasPersonRole)
        // slither-disable-next-line unused-return
        (enterprise,,,) = _registry.getPerson(person);
    }

    /// `<prefix>/<suffix>`: the prefix must be registered to `enterprise`.
    function _checkEquipment(string calldata equipment, address enterprise) private view {
        bytes calldata b = bytes(equipment);
        uint256 slash = 0;
        while (slash < b.length && b[slash] != "/") ++slash;
        address owner = slash == 0 || slash + 1 >= b.length ? address(0) : _registry.enterpriseByPrefix(equipment[:slash]);
        if (owner == address(0) || owner != enterprise) revert EquipmentNotOwned(equipment, owner, enterprise);
    }

    function _inWindow(uint256 id, Ticket storage t, Action action, uint64 lateGrace) private view {
        uint64 opens = t.plannedStart > GRACE ? t.plannedStart - GRACE : 0;
        uint64 closes = t.plannedEnd + lateGrace;
        if (block.timestamp < opens || block.timestamp > closes) {
            revert OutsideWindow(id, action, opens, closes, block.timestamp);
        }
    }

    function _issue(IssueRequest calldata r, address issuer) private returns (uint256 id) {
        if (bytes(r.equipment).length == 0) revert EmptyEquipment();
        if (r.digest == bytes32(0)) revert ZeroDigest();
        if (r.plannedEnd <= r.plannedStart) revert InvalidWindow(r.plannedStart, r.plannedEnd);
        if (r.plannedEnd <= block.timestamp || uint256(r.plannedStart) + GRACE < block.timestamp) {
            revert WindowInPast(r.plannedStart, r.plannedEnd, block.timestamp);
        }
        if (r.plannedEnd - r.plannedStart > MAX_WINDOW) revert WindowTooLong(r.plannedStart, r.plannedEnd);
        uint256 n = r.crew.length;
        if (n == 0 || n > MAX_CREW) revert InvalidCrewSize(n);
        if (issuer == r.permitter || issuer == r.leader) revert SamePerson(issuer);
        if (r.permitter == r.leader) revert SamePerson(r.permitter);
        _requireRole(issuer, TICKET_ISSUER);
        _checkEquipment(r.equipment, _enterpriseOf(issuer));
        _requireRole(r.permitter, PERMITTING_OFFICER);
        _requireRole(r.leader, PERSON_IN_CHARGE);
        for (uint256 i = 0; i < n; ++i) {
            address c = r.crew[i];
            if (c == issuer || c == r.permitter || c == r.leader) revert SamePerson(c);
            for (uint256 j = 0; j < i; ++j) {
                if (r.crew[j] == c) revert SamePerson(c);
            }
            _requireRole(c, CREW_MEMBER);
        }

        id = ++ticketCount;
        Ticket storage t = _tickets[id];
        t.equipment = r.equipment;
        t.digest = r.digest;
        t.issuer = issuer;
        t.permitter = r.permitter;
        t.leader = r.leader;
        t.crew = r.crew;
        t.plannedStart = r.plannedStart;
        t.plannedEnd = r.plannedEnd;
        t.status = Status.Issued;
        bytes32 equipmentHash = keccak256(bytes(r.equipment));
        _byEquipment[equipmentHash].push(id);
        emit TicketIssued(id, equipmentHash, r.equipment, r.digest, issuer);
        emit TicketWindow(id, r.plannedStart, r.plannedEnd, false);
        _record(id, Action.Issue, issuer, 0);
    }

    function _step(uint256 id, Action action, uint64 plannedEnd, address actor) private {
        Ticket storage t = _tickets[id];
        Status s = t.status;
        if (s == Status.None) revert UnknownTicket(id);
        if (action == Action.Permit) {
            _expect(id, s, Status.Issued, action, t.permitter, actor, PERMITTING_OFFICER);
            _inWindow(id, t, action, 0);
            t.status = Status.Permitted;
        } else if (action == Action.Brief) {
            _expect(id, s, Status.Permitted, action, t.leader, actor, PERSON_IN_CHARGE);
            _inWindow(id, t, action, 0);
            t.status = Status.Briefed;
        } else if (action == Action.Acknowledge) {
            if (s != Status.Briefed) revert WrongStatus(id, s, action);
            if (!_isCrew(t, actor)) revert NotCrewMember(id, actor);
            if (_acked[id][actor]) revert AlreadyAcknowledged(id, actor);
            _requireRole(actor, CREW_MEMBER);
            _inWindow(id, t, action, 0);
            _acked[id][actor] = true;
            t.acknowledged += 1;
        } else if (action == Action.EndWork) {
            _expect(id, s, Status.Briefed, action, t.leader, actor, PERSON_IN_CHARGE);
            if (t.acknowledged != t.crew.length) revert CrewNotAcknowledged(id, t.acknowledged, t.crew.length);
            _inWindow(id, t, action, GRACE);
            t.status = Status.WorkEnded;
        } else if (action == Action.Terminate) {
            _expect(id, s, Status.WorkEnded, action, t.permitter, actor, PERMITTING_OFFICER);
            t.status = Status.Terminated;
        } else if (action == Action.Cancel) {
            _expect(id, s, Status.Issued, action, t.issuer, actor, TICKET_ISSUER);
            t.status = Status.Cancelled;
        } else if (action == Action.Extend) {
            if (s != Status.Permitted && s != Status.Briefed) revert WrongStatus(id, s, action);
            if (actor != t.permitter) revert NotNamedPerson(id, action, t.permitter, actor);
            _requireRole(actor, PERMITTING_OFFICER);
            if (t.extended) revert ExtensionAlreadyUsed(id);
            if (plannedEnd <= t.plannedEnd || plannedEnd > t.plannedEnd + MAX_EXTENSION) {
                revert InvalidExtension(id, t.plannedEnd, plannedEnd);
            }
            _inWindow(id, t, action, 0); // before the planned end: an expired ticket is not revived
            t.extended = true;
            t.plannedEnd = plannedEnd;
            emit TicketWindow(id, t.plannedStart, plannedEnd, true);
        } else {
            revert InvalidAction(uint8(action));
        }
        _record(id, action, actor, action == Action.Extend ? plannedEnd : 0);
    }

    function _expect(
        uint256 id,
        Status s,
        Status required,
        Action action,
        address expected,
        address actor,
        uint32 role
    ) private view {
        if (s != required) revert WrongStatus(id, s, action);
        if (actor != expected) revert NotNamedPerson(id, action, expected, actor);
        _requireRole(actor, role);
    }

    function _isCrew(Ticket storage t, address actor) private view returns (bool) {
        uint256 n = t.crew.length;
        for (uint256 i = 0; i < n; ++i) {
            if (t.crew[i] == actor) return true;
        }
        return false;
    }

    function _record(uint256 id, Action action, address actor, uint64 plannedEnd) private {
        _steps[id].push(
            Step({
                action: action,
                actor: actor,
                submitter: msg.sender,
                timestamp: uint64(block.timestamp),
                blockNumber: uint64(block.number),
                plannedEnd: plannedEnd
            })
        );
        emit StepRecorded(id, action, actor, msg.sender, uint64(block.timestamp));
    }

    function _useSignature(address signer, bytes32 structHash, uint256 deadline, bytes calldata signature) private {
        if (block.timestamp > deadline) revert SignatureExpired(deadline);
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (v < 27) v += 27;
        if ((v != 27 && v != 28) || uint256(s) > HALF_N) revert InvalidSignature();
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
        address recovered = ecrecover(digest, v, r, s);
        if (recovered == address(0)) revert InvalidSignature();
        if (recovered != signer) revert WrongSigner(signer, recovered);
        nonces[signer] += 1;
    }
}
